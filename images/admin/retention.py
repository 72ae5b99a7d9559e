"""Recycle-bin retention rules: how long deleted images of an owner, a tag or a
visibility stay restorable. Saving and deleting go through images.services.retention,
which refuses weakening a locked rule without the unlock permission and moves the
recycle bin's scrub times with the rules; the form says the same refusal at the field
at fault before anything is written."""

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from images import policy
from images.errors import ImageError
from images.models import RetentionRule
from images.services.retention import lock_refusal, retention_rule_delete, retention_rule_save


class RetentionRuleForm(forms.ModelForm):
    class Meta:
        model = RetentionRule
        fields = ["name", "description", "owner", "tag", "visibility", "retention", "locked"]

    def __init__(self, *args, actor=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        # The rule as stored, to compare the edit with (the form's instance is
        # changed in place by validation).
        self.previous = (
            RetentionRule.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        )

    def clean_retention(self):
        retention = self.cleaned_data["retention"]
        if retention is not None and retention.total_seconds() < 0:
            raise forms.ValidationError("A retention cannot be negative.")
        return retention

    def clean(self):
        cleaned = super().clean()
        if self.errors or self.previous is None:
            return cleaned
        candidate = RetentionRule(**{name: cleaned.get(name) for name in self.Meta.fields})
        refusal = lock_refusal(self.actor, candidate, self.previous)
        if refusal:
            field, message = refusal
            self.add_error(field or None, message)
        return cleaned


@admin.register(RetentionRule)
class RetentionRuleAdmin(admin.ModelAdmin):
    """Of the rules matching a deleted image, the longest retention wins; no match:
    IMAGES_SCRUB_DELAY_SECONDS. A locked rule may still be lengthened by anyone who
    may change rules."""

    form = RetentionRuleForm
    list_display = ["name", "owner_shown", "tag_shown", "visibility_shown", "retention", "locked"]
    list_filter = ["locked", "visibility"]
    search_fields = ["name", "owner", "tag"]
    readonly_fields = ["created_at", "updated_at"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)

        class WithActor(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, actor=request.user, **inner)

        return WithActor

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.locked and not policy.can_unlock_retention_rule(request.user):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # The form has validated the lock already; the service checks it again under
        # the row lock, so a rule locked meanwhile is not weakened.
        try:
            retention_rule_save(rule=obj, actor=request.user)
        except ImageError as error:
            messages.error(request, f"The rule was not saved: {error.message}")

    def delete_model(self, request, obj):
        try:
            retention_rule_delete(rule=obj, actor=request.user)
        except ImageError as error:
            messages.error(request, f"The rule was not deleted: {error.message}")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RetentionRule]) -> None:
        for rule in queryset:
            self.delete_model(request, rule)

    @admin.display(description="owner", ordering="owner")
    def owner_shown(self, rule: RetentionRule) -> str:
        return rule.owner or "any"

    @admin.display(description="tag", ordering="tag")
    def tag_shown(self, rule: RetentionRule) -> str:
        return rule.tag or "any"

    @admin.display(description="visibility", ordering="visibility")
    def visibility_shown(self, rule: RetentionRule) -> str:
        return rule.get_visibility_display() or "any"
