// Front end of sdelab.widgets.DragPicker (anywidget ESM, no dependencies).
//
// Three stacked layers of one size: the image and the mask at image resolution, upscaled by CSS
// (nearest-neighbour when enlarging, so a 16x16 digit stays crisp), and a top canvas at screen
// resolution for the arrows and the brush outline, which also takes the pointer events.
// Points are [x, y] integer image pixels; the mask is W*H bytes (255 = editable), null when empty.

const SOURCE = "#e00000";
const TARGET = "#0050ff";
const MASK_RGBA = [0, 200, 80, 110]; // overlay colour where the mask is 255 (alpha out of 255)
const DOT_RADIUS = 5; // CSS pixels

function element(tag, className, parent, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}

function button(parent, text, title, onClick) {
  const node = element("button", "sdelab-picker-button", parent, text);
  node.type = "button";
  node.title = title;
  node.addEventListener("click", onClick);
  return node;
}

function bytesOf(value) {
  // a DataView (what ipywidgets gives for bytes), an ArrayBuffer or null -> Uint8Array or null
  if (value == null) return null;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function drawArrow(ctx, [x0, y0], [xt, yt], label) {
  const angle = Math.atan2(yt - y0, xt - x0);
  const back = Math.min(DOT_RADIUS + 1, Math.hypot(xt - x0, yt - y0)); // the tip touches the target dot
  const [x1, y1] = [xt - back * Math.cos(angle), yt - back * Math.sin(angle)];
  const head = 10;
  const path = () => {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    for (const side of [-1, 1]) {
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - head * Math.cos(angle + side * 0.45), y1 - head * Math.sin(angle + side * 0.45));
    }
  };
  ctx.lineCap = "round";
  ctx.strokeStyle = "black"; // a dark halo under a white arrow shows on any image
  ctx.lineWidth = 4;
  path();
  ctx.stroke();
  ctx.strokeStyle = "white";
  ctx.lineWidth = 2;
  path();
  ctx.stroke();
  ctx.font = "bold 13px sans-serif";
  ctx.lineWidth = 3;
  ctx.strokeStyle = "black";
  ctx.strokeText(label, x0 + 7, y0 - 7);
  ctx.fillStyle = "white";
  ctx.fillText(label, x0 + 7, y0 - 7);
}

function drawDot(ctx, [x, y], colour) {
  ctx.beginPath();
  ctx.arc(x, y, DOT_RADIUS, 0, 2 * Math.PI);
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "white";
  ctx.stroke();
}

export default {
  render({ model, el }) {
    const W = model.get("_width");
    const H = model.get("_height");
    const scale = model.get("display_size") / Math.max(W, H);
    const cssW = Math.max(1, Math.round(W * scale));
    const cssH = Math.max(1, Math.round(H * scale));
    const dpr = window.devicePixelRatio || 1;

    el.classList.add("sdelab-picker");
    const toolbar = element("div", "sdelab-picker-toolbar", el);
    const stage = element("div", "sdelab-picker-stage", el);
    stage.style.width = `${cssW}px`;
    stage.style.height = `${cssH}px`;
    const layer = (width, height) => {
      const canvas = element("canvas", "sdelab-picker-layer", stage);
      canvas.width = width;
      canvas.height = height;
      canvas.style.width = `${cssW}px`;
      canvas.style.height = `${cssH}px`;
      // nearest-neighbour when enlarging (small images stay pixel-exact), smooth when shrinking
      canvas.style.imageRendering = scale >= 1 ? "pixelated" : "auto";
      return canvas;
    };
    const imageLayer = layer(W, H);
    const maskLayer = layer(W, H);
    const top = layer(Math.round(cssW * dpr), Math.round(cssH * dpr));
    top.classList.add("sdelab-picker-top");
    top.style.imageRendering = "auto"; // drawn at screen resolution: lines stay smooth at any devicePixelRatio
    const status = element("div", "sdelab-picker-status", el);

    const png = new Blob([bytesOf(model.get("_png"))], { type: "image/png" });
    createImageBitmap(png).then((bitmap) => imageLayer.getContext("2d").drawImage(bitmap, 0, 0));

    // state of this view: the model holds points and mask; undo history, mode and brush are per view
    const mask = new Uint8Array(W * H);
    mask.set(bytesOf(model.get("mask")) ?? []);
    let history = []; // {kind: "point"} or {kind: "stroke", before: Uint8Array}
    let mode = "points";
    let eraser = false;
    let brush = 24; // diameter in CSS pixels
    let cursor = null; // last pointer position in CSS pixels, for the brush outline
    let stroke = null; // last stamped position (image pixels) while painting

    const sources = () => model.get("source_points");
    const targets = () => model.get("target_points");
    const toCss = ([x, y]) => [((x + 0.5) * cssW) / W, ((y + 0.5) * cssH) / H];

    function drawMask() {
      const ctx = maskLayer.getContext("2d");
      const pixels = ctx.createImageData(W, H);
      for (let i = 0; i < mask.length; i++) {
        if (mask[i]) pixels.data.set(MASK_RGBA, 4 * i);
      }
      ctx.putImageData(pixels, 0, 0);
    }

    function drawTop() {
      const ctx = top.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, cssW, cssH);
      const src = sources();
      const tgt = targets();
      tgt.slice(0, src.length).forEach((t, i) => drawArrow(ctx, toCss(src[i]), toCss(t), String(i + 1)));
      src.forEach((s) => drawDot(ctx, toCss(s), SOURCE));
      tgt.forEach((t) => drawDot(ctx, toCss(t), TARGET));
      if (mode === "mask" && cursor) {
        ctx.beginPath();
        ctx.arc(cursor[0], cursor[1], brush / 2, 0, 2 * Math.PI);
        ctx.lineWidth = 1;
        ctx.strokeStyle = eraser ? "black" : "white";
        ctx.stroke();
      }
      const pairs = tgt.length;
      const waiting = src.length > tgt.length ? ", click its target" : "";
      const painted = mask.reduce((n, v) => n + (v ? 1 : 0), 0);
      status.textContent = `${pairs} pair${pairs === 1 ? "" : "s"}${waiting} · mask ${painted} px · image ${W}x${H}`;
    }

    function savePoints(src, tgt) {
      model.set("source_points", src);
      model.set("target_points", tgt);
      model.save_changes();
    }

    function saveMask() {
      model.set("mask", mask.some((v) => v) ? new DataView(mask.slice().buffer) : null);
      model.save_changes();
    }

    // pointer position -> image pixels (floats); the top canvas has no border or padding, and
    // getBoundingClientRect is the displayed box, so this also holds under CSS zoom or transforms
    function imagePosition(event) {
      const rect = top.getBoundingClientRect();
      return [((event.clientX - rect.left) * W) / rect.width, ((event.clientY - rect.top) * H) / rect.height];
    }

    function stamp([x, y]) {
      const value = eraser ? 0 : 255;
      const r = ((brush / 2) * W) / cssW; // brush radius in image pixels
      const inside = (px, py) => px >= 0 && py >= 0 && px < W && py < H;
      for (let py = Math.floor(y - r); py <= Math.floor(y + r); py++) {
        for (let px = Math.floor(x - r); px <= Math.floor(x + r); px++) {
          if (inside(px, py) && (px + 0.5 - x) ** 2 + (py + 0.5 - y) ** 2 <= r * r) mask[py * W + px] = value;
        }
      }
      const [cx, cy] = [Math.floor(x), Math.floor(y)]; // the pixel under the pointer, however small the brush
      if (inside(cx, cy)) mask[cy * W + cx] = value;
    }

    function paintTo(position) {
      const [x0, y0] = stroke;
      const [x1, y1] = position;
      const step = Math.max(0.5, ((brush / 4) * W) / cssW);
      const n = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / step));
      for (let i = 1; i <= n; i++) stamp([x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n]);
      stroke = position;
      drawMask();
    }

    top.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      const position = imagePosition(event);
      if (mode === "points") {
        const x = Math.min(W - 1, Math.max(0, Math.floor(position[0])));
        const y = Math.min(H - 1, Math.max(0, Math.floor(position[1])));
        const src = [...sources()];
        const tgt = [...targets()];
        (src.length > tgt.length ? tgt : src).push([x, y]);
        history.push({ kind: "point" });
        savePoints(src, tgt);
      } else {
        top.setPointerCapture(event.pointerId);
        history.push({ kind: "stroke", before: mask.slice() });
        stroke = position;
        stamp(position);
        drawMask();
        drawTop();
      }
    });
    top.addEventListener("pointermove", (event) => {
      const rect = top.getBoundingClientRect();
      cursor = [event.clientX - rect.left, event.clientY - rect.top];
      if (stroke) paintTo(imagePosition(event));
      drawTop();
    });
    const endStroke = () => {
      if (!stroke) return;
      stroke = null;
      saveMask();
      drawTop();
    };
    top.addEventListener("pointerup", endStroke);
    top.addEventListener("pointercancel", endStroke);
    top.addEventListener("pointerleave", () => {
      cursor = null;
      drawTop();
    });

    const modes = element("span", "sdelab-picker-group", toolbar);
    const pointsButton = button(modes, "Points", "click a source (red), then its target (blue)", () => setMode("points"));
    const maskButton = button(modes, "Mask", "paint the region the edit may change", () => setMode("mask"));
    const brushGroup = element("span", "sdelab-picker-group", toolbar);
    const slider = element("input", "sdelab-picker-slider", element("label", "", brushGroup, "brush "));
    Object.assign(slider, { type: "range", min: 2, max: 160, value: brush, title: "brush diameter (screen pixels)" });
    slider.addEventListener("input", () => {
      brush = Number(slider.value);
      drawTop();
    });
    const eraserButton = button(brushGroup, "Eraser", "paint to remove from the mask", () => {
      eraser = !eraser;
      eraserButton.classList.toggle("sdelab-picker-active", eraser);
      drawTop();
    });
    const actions = element("span", "sdelab-picker-group", toolbar);
    button(actions, "Undo", "undo the last point or stroke", () => {
      const last = history.pop();
      if (last?.kind === "point") {
        const src = [...sources()];
        const tgt = [...targets()];
        (src.length > tgt.length ? src : tgt).pop();
        savePoints(src, tgt);
      } else if (last?.kind === "stroke") {
        mask.set(last.before);
        drawMask();
        saveMask();
        drawTop();
      }
    });
    button(actions, "Clear points", "remove every point", () => {
      history = history.filter((h) => h.kind !== "point");
      savePoints([], []);
    });
    button(actions, "Clear mask", "remove the whole mask", () => {
      history = history.filter((h) => h.kind !== "stroke");
      mask.fill(0);
      drawMask();
      saveMask();
      drawTop();
    });

    function setMode(next) {
      mode = next;
      pointsButton.classList.toggle("sdelab-picker-active", mode === "points");
      maskButton.classList.toggle("sdelab-picker-active", mode === "mask");
      brushGroup.classList.toggle("sdelab-picker-hidden", mode !== "mask");
      top.style.cursor = mode === "mask" ? "none" : "crosshair";
      drawTop();
    }

    // changes from Python (set_points, set_mask) or from another view of the same widget
    const onPoints = () => drawTop();
    const onMask = () => {
      const incoming = bytesOf(model.get("mask"));
      if (incoming ? incoming.every((v, i) => v === mask[i]) : !mask.some((v) => v)) return; // our own change
      mask.fill(0);
      if (incoming) mask.set(incoming);
      history = history.filter((h) => h.kind !== "stroke"); // their snapshots predate the new mask
      drawMask();
      drawTop();
    };
    model.on("change:source_points", onPoints);
    model.on("change:target_points", onPoints);
    model.on("change:mask", onMask);

    setMode("points");
    drawMask();
    return () => {
      model.off("change:source_points", onPoints);
      model.off("change:target_points", onPoints);
      model.off("change:mask", onMask);
    };
  },
};
