// Attachments in the web client (docs/protocol.md, "Attachments"): pick or paste a file,
// preview it, upload it, send it as an `image` or `file` message; show image messages as
// thumbnails (a click opens the full image) and file messages as a download link.
//
// Downloads need the Authorization header, which an <img> or a link cannot send, so every
// file is fetched with it and shown from a blob: URL. The URL is always built from the
// message's upload_id, never taken from the message: a token never goes where a sender says.

import { accessToken, refreshTokens } from "./api.js";
import { $, h, toast } from "./dom.js";

const UPLOAD_ID = /^[0-9a-f]{32}$/;
const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const THUMB_MAX = 240; // CSS pixels of the longer side of a thumbnail in the chat

let staged = null;  // {file, previewUrl, uploading}
const blobUrls = new Map(); // API path -> Promise<blob: URL> (thumbnails, kept for the page's life)

/** Wire the composer's attach button, the preview and the image viewer. */
export function initAttachments() {
  const input = $("#attach-input");
  $("#attach").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) stage(input.files[0]);
    input.value = ""; // choosing the same file again still fires `change`
  });
  $("#composer-input").addEventListener("paste", (ev) => {
    const file = ev.clipboardData && ev.clipboardData.files && ev.clipboardData.files[0];
    if (file) {
      ev.preventDefault();
      stage(file);
    }
  });
  const viewer = $("#image-viewer");
  viewer.addEventListener("click", (ev) => { if (ev.target === viewer) viewer.close(); });
  viewer.addEventListener("close", () => {
    const img = $("#image-viewer-img");
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.removeAttribute("src");
  });
  $("#image-viewer-close").addEventListener("click", () => viewer.close());
}

export function hasStagedAttachment() {
  return staged !== null;
}

/** Forget the staged file (after sending, or when the conversation changes). */
export function clearStaged() {
  if (staged && staged.uploading) return; // its send finishes into the conversation it was picked for
  if (staged) URL.revokeObjectURL(staged.previewUrl);
  staged = null;
  renderPreview();
}

function stage(file) {
  if (staged && staged.uploading) return;
  clearStaged();
  staged = { file, previewUrl: URL.createObjectURL(file), uploading: false };
  renderPreview();
  $("#composer-input").focus();
}

function renderPreview() {
  const box = $("#attach-preview");
  box.hidden = !staged;
  if (!staged) {
    box.replaceChildren();
    return;
  }
  const { file } = staged;
  const looksImage = IMAGE_TYPES.has(file.type);
  box.replaceChildren(
    looksImage
      ? h("img", { class: "attach-thumb", src: staged.previewUrl, alt: "" })
      : h("span", { class: "attach-icon", "aria-hidden": "true", text: "📄" }),
    h("div", { class: "attach-info" },
      h("span", { class: "attach-name", text: file.name || "file" }),
      h("span", { class: "attach-size", text: staged.uploading ? "Uploading…" : formatSize(file.size) })),
    h("button", {
      type: "button", class: "icon-btn attach-remove", "aria-label": "Remove the attachment", title: "Remove",
      disabled: staged.uploading, onclick: clearStaged,
    }, "✕"));
}

/** Upload the staged file, then send it to `conv` with `caption` through `send`
 *  (store.js' sendText(conv, body, kind, extra)). The server decides what the file is. */
export async function sendStaged(conv, caption, send) {
  if (!staged || staged.uploading) return;
  staged.uploading = true;
  renderPreview();
  const current = staged;
  try {
    const body = new FormData();
    body.append("file", current.file, current.file.name || "file");
    const r = await authorizedFetch("/api/uploads", { method: "POST", body });
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new Error((data && typeof data.detail === "string" && data.detail)
      || (r.status === 413 ? "The file is too large." : `Upload failed (${r.status})`));
    const kind = IMAGE_TYPES.has(data.content_type) ? "image" : "file";
    current.uploading = false;
    if (staged === current) clearStaged();
    send(conv, caption, kind, data);
  } catch (err) {
    current.uploading = false;
    if (staged === current) renderPreview();
    toast(err.message || "Upload failed");
  }
}

async function authorizedFetch(path, init = {}) {
  let token = await accessToken();
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(path, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` } });
    if (r.status !== 401 || attempt > 0) return r;
    token = await refreshTokens(token);
  }
}

function blobUrl(path, { cache = true } = {}) {
  if (cache && blobUrls.has(path)) return blobUrls.get(path);
  const p = authorizedFetch(path).then(async (r) => {
    if (!r.ok) throw new Error(r.status === 404 ? "This file is no longer available." : `Download failed (${r.status})`);
    return URL.createObjectURL(await r.blob());
  });
  if (cache) {
    blobUrls.set(path, p);
    p.catch(() => blobUrls.delete(path)); // try again on the next render
  }
  return p;
}

/** The attachment part of a message's bubble (a message or a pending send), or null when
 *  it carries no upload: view-messages.js then shows the message as before. */
export function attachmentView(m) {
  const extra = m && m.extra;
  if (!extra || typeof extra.upload_id !== "string" || !UPLOAD_ID.test(extra.upload_id)) return null;
  const path = `/api/uploads/${extra.upload_id}`;
  const name = typeof extra.name === "string" && extra.name ? extra.name : "file";
  if (m.kind === "image" && IMAGE_TYPES.has(extra.content_type)) return imageView(path, name, extra);
  return fileView(path, name, extra);
}

function imageView(path, name, extra) {
  const [w, h2] = fit(extra.width, extra.height);
  const img = h("img", { class: "att-thumb", alt: name, width: w, height: h2, decoding: "async" });
  const button = h("button", {
    type: "button", class: "att-image loading", title: name, "aria-label": `Open image ${name}`,
    onclick: () => openViewer(path, name),
  }, img);
  blobUrl(`${path}/thumbnail`).then((url) => {
    img.src = url;
    button.classList.remove("loading");
  }, () => {
    button.classList.remove("loading");
    button.classList.add("missing");
    img.alt = `${name} (unavailable)`;
  });
  return button;
}

function fileView(path, name, extra) {
  const size = Number.isFinite(extra.size) ? formatSize(extra.size) : "";
  return h("a", {
    class: "att-file", href: "#", title: `Download ${name}`,
    onclick: async (ev) => {
      ev.preventDefault();
      try {
        const url = await blobUrl(path, { cache: false });
        const link = h("a", { href: url, download: name });
        document.body.append(link);
        link.click();
        link.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60_000);
      } catch (err) {
        toast(err.message || "Download failed");
      }
    },
  },
  h("span", { class: "att-file-icon", "aria-hidden": "true", text: "📄" }),
  h("span", { class: "att-file-name", text: name }),
  size ? h("span", { class: "att-file-size", text: size }) : null);
}

async function openViewer(path, name) {
  const viewer = $("#image-viewer");
  const img = $("#image-viewer-img");
  img.alt = name;
  $("#image-viewer-name").textContent = name;
  if (!viewer.open) viewer.showModal();
  try {
    const url = await blobUrl(path, { cache: false });
    if (viewer.open) img.src = url;
    else URL.revokeObjectURL(url);
  } catch (err) {
    viewer.close();
    toast(err.message || "Could not open the image");
  }
}

/** Thumbnail box in CSS pixels for an image of width x height (the server sends both for images). */
function fit(width, height) {
  if (!(width > 0 && height > 0)) return [THUMB_MAX, THUMB_MAX];
  const scale = Math.min(1, THUMB_MAX / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

function formatSize(bytes) {
  if (!(bytes >= 0)) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
