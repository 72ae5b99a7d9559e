/*
 * The image page's "Upload data": the chosen file goes from the browser straight to
 * the image's data endpoint, PUT /v2/images/{id}/file, as the raw request body. The
 * server streams it into the store as it arrives, so no temporary file is written on
 * the server, whatever the size (a multipart form would be spooled to one first).
 *
 * XMLHttpRequest rather than fetch(): only it reports upload progress. The request
 * is signed in by the admin's session; DRF's session authentication then wants the
 * CSRF token, sent in X-CSRFToken. Cancel aborts the request: the server sees the
 * connection close, removes what it received and puts the image back to queued.
 *
 * No dependencies; served with the static files. Without JavaScript the form posts
 * to the admin's own upload view instead.
 */
(function () {
  "use strict";

  // The rate is measured over the last few seconds, so it follows a changing link.
  const RATE_WINDOW_MS = 3000;
  // After a cancel or a failure, how long to wait for the server to put the image back.
  const SETTLE_POLLS = 60;
  const SETTLE_POLL_MS = 500;

  function humanSize(bytes) {
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return (unit ? value.toFixed(1) : String(Math.round(value))) + " " + units[unit];
  }

  function humanDuration(seconds) {
    if (!isFinite(seconds)) return "…";
    const whole = Math.ceil(seconds);
    if (whole < 60) return whole + " s";
    const minutes = Math.floor(whole / 60);
    if (minutes < 60) return minutes + " min " + (whole % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  // The API's refusals are Glance's error body: {"message", "code", "title"}.
  function apiMessage(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body && body.message) return body.message;
    } catch (error) {
      // Not JSON: a proxy's error page, say. The status line is all there is.
    }
    return xhr.status ? xhr.status + " " + xhr.statusText : "the connection was lost";
  }

  function setUp(panel) {
    const form = panel.querySelector("form");
    const input = form.querySelector("input[type=file]");
    const submit = form.querySelector("[type=submit]");
    const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    const bar = panel.querySelector(".upload-progress");
    const progress = bar.querySelector("progress");
    const figures = bar.querySelector(".upload-figures");
    const cancel = bar.querySelector(".upload-cancel");
    const message = panel.querySelector(".upload-message");
    let xhr = null;

    function say(text, kind) {
      message.textContent = text;
      message.className = "upload-message upload-" + kind;
      message.hidden = false;
    }

    function busy(on) {
      input.disabled = on;
      submit.disabled = on;
      cancel.hidden = !on;
      if (on) bar.hidden = false;
    }

    // The image as the API shows it now; while the server is still undoing an
    // interrupted upload (status saving), asked again a little later.
    function afterwards(settle, then) {
      let polls = 0;
      function ask() {
        fetch(panel.dataset.imageEndpoint, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        })
          .then(function (response) {
            return response.ok ? response.json() : Promise.reject(response.status);
          })
          .then(function (image) {
            polls += 1;
            if (settle && image.status === "saving" && polls < SETTLE_POLLS) {
              window.setTimeout(ask, SETTLE_POLL_MS);
            } else {
              then(image);
            }
          })
          .catch(function () {
            then(null);
          });
      }
      ask();
    }

    function reloadLink() {
      const link = document.createElement("a");
      link.href = window.location.pathname;
      link.textContent = "Reload the page";
      message.append(" ", link, " to see its history.");
    }

    function send(file) {
      const samples = [[performance.now(), 0]];
      const started = samples[0][0];
      progress.max = file.size || 1;
      progress.value = 0;
      figures.textContent = "0 of " + humanSize(file.size);
      message.hidden = true;
      busy(true);

      xhr = new XMLHttpRequest();
      xhr.open("PUT", panel.dataset.uploadEndpoint);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", token);
      // The size up front: the server refuses one over the cap or the quota at once,
      // and a short body (a truncated file) is an error, not a smaller image.
      xhr.setRequestHeader("x-openstack-image-size", String(file.size));

      xhr.upload.onprogress = function (event) {
        const now = performance.now();
        const total = event.lengthComputable ? event.total : file.size;
        samples.push([now, event.loaded]);
        while (samples.length > 2 && now - samples[0][0] > RATE_WINDOW_MS) samples.shift();
        const seconds = (now - samples[0][0]) / 1000;
        const rate = seconds > 0 ? (event.loaded - samples[0][1]) / seconds : 0;
        const left = rate > 0 ? (total - event.loaded) / rate : Infinity;
        const percent = total ? Math.floor((100 * event.loaded) / total) : 100;
        progress.value = event.loaded;
        figures.textContent =
          humanSize(event.loaded) + " of " + humanSize(total) + " (" + percent + " %), " +
          humanSize(rate) + "/s, " + humanDuration(left) + " left";
      };
      xhr.upload.onload = function () {
        progress.value = progress.max;
        figures.textContent = "All " + humanSize(file.size) + " sent; the registry is storing it…";
      };
      function stopped(how) {
        xhr = null;
        busy(false);
        figures.textContent =
          how + " after " + humanSize(progress.value) + " of " + humanSize(file.size) + " sent.";
      }
      xhr.onload = function () {
        const done = xhr;
        if (done.status !== 204) {
          stopped("Refused");
          failed("Not uploaded: " + apiMessage(done) + ".");
          return;
        }
        xhr = null;
        busy(false);
        const seconds = (performance.now() - started) / 1000;
        figures.textContent =
          humanSize(file.size) + " in " + humanDuration(seconds) + " (" +
          humanSize(file.size / Math.max(seconds, 0.001)) + "/s)";
        form.hidden = true;
        afterwards(false, function (image) {
          say(
            image
              ? file.name + ": " + humanSize(image.size) + " uploaded; the image is now " +
                  image.status + " (MD5 " + image.checksum + ")."
              : file.name + " was uploaded.",
            "success"
          );
          reloadLink();
        });
      };
      xhr.onerror = function () {
        stopped("Connection lost");
        failed("Not uploaded: the connection to the registry was lost.");
      };
      xhr.onabort = function () {
        stopped("Cancelled");
        say("Cancelled; the registry is removing what it received…", "info");
        afterwards(true, function (image) {
          say(
            image && image.status === "queued"
              ? "Cancelled: nothing was stored; the image is queued again."
              : "Cancelled." + (image ? " The image is " + image.status + "." : ""),
            "info"
          );
        });
      };
      xhr.send(file);
    }

    function failed(text) {
      say(text, "error");
      afterwards(true, function (image) {
        if (image) message.append(" The image is " + image.status + ".");
        reloadLink();
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const file = input.files[0];
      if (!file) {
        say("Choose a file first.", "error");
        return;
      }
      send(file);
    });
    cancel.addEventListener("click", function () {
      if (xhr) xhr.abort();
    });
    // Leaving the page would abort the upload: ask first.
    window.addEventListener("beforeunload", function (event) {
      if (xhr) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
    panel.classList.add("upload-streaming");
  }

  document.querySelectorAll("[data-upload-endpoint]").forEach(setUp);
})();
