"""Recycle-bin retention rules and each pending_delete image's end of retention.
Image administrators hold every permission of the images app (migration 0003), so
they are given the rules' ones, the unlock permission included, as 0007 did for
tasks."""

from importlib import import_module

from django.db import migrations, models

roles = import_module("images.migrations.0003_admin_roles")


class Migration(migrations.Migration):

    dependencies = [
        ('images', '0011_deprecation'),
    ]

    operations = [
        migrations.CreateModel(
            name='RetentionRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=255)),
                ('description', models.TextField(blank=True)),
                ('owner', models.CharField(blank=True, help_text='Blank: any owner.', max_length=255)),
                ('tag', models.CharField(blank=True, help_text='Blank: any tags.', max_length=255)),
                ('visibility', models.CharField(blank=True, choices=[('public', 'Public'), ('community', 'Community'), ('shared', 'Shared'), ('private', 'Private')], help_text='Blank: any visibility.', max_length=16)),
                ('retention', models.DurationField(help_text='How long a matching deleted image stays restorable, e.g. 30 00:00:00.')),
                ('locked', models.BooleanField(default=False, help_text='Only holders of the unlock permission may shorten, narrow, unlock or delete a locked rule.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['name', 'id'],
                'permissions': [('unlock_retention_rule', 'Can shorten, unlock and delete locked rules')],
            },
        ),
        migrations.AddField(
            model_name='image',
            name='retained_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['status', 'retained_until', 'deleted_at'], name='image_status_retained_idx'),
        ),
        migrations.RunPython(roles.create_roles, migrations.RunPython.noop),
    ]
