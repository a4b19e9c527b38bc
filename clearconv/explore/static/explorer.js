/* clearconv explorer. Every tensor value on this page was computed by clearconv (Python)
   and shipped in the page; this script only decodes the arrays, looks values up by index
   arithmetic (which window cell a kernel tap reads), sorts them and draws them.
   The shape playground alone does arithmetic of its own: sizes, not tensor values. */
"use strict";
(function () {
  const CC = window.CC = { ready: false, errors: [] };
  let META = null, A = {}, T = null;         // facts, arrays, the backward pass shown
  const MATH = document.body.dataset.math || "docs/MATH.md";
  const SECTION_ANCHOR = {
    "2": "2-digital-images",
    "4": "4-valid-and-same-convolution",
    "5": "5-strided-convolution",
    "6": "6-into-three-dimensions",
    "7": "7-convolution-layer",
    "9": "9-convolution-backpropagation",
    "10": "10-pooling-layer",
    "11": "11-pooling-backpropagation",
  };
  const FIG = { "2": "fig. 2", "4": "fig. 5", "5": "fig. 6", "6": "fig. 7", "7": "fig. 8",
                "9": "fig. 10-11", "10": "fig. 12", "11": "fig. 13" };

  // ------------------------------------------------------------------ helpers
  const $ = (s, el) => (el || document).querySelector(s);
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  function fmt(v) {                       // display rounding only
    if (v === undefined || v === null) return "";
    if (!isFinite(v)) return v > 0 ? "+inf" : (v < 0 ? "-inf" : "NaN");
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 1e-3 && a < 1e5) return String(parseFloat(v.toPrecision(4)));
    return v.toExponential(3);
  }
  function link(sec, text) {
    if (!sec) return "";
    const anchor = SECTION_ANCHOR[sec] || "";
    return `<a class="mathlink" href="${MATH}#${anchor}" title="the formulas of this view">MATH.md §${sec}</a>` +
      (FIG[sec] ? ` <span class="note">(article ${text || FIG[sec]})</span>` : "");
  }
  function arr(name) {
    const a = A[name];
    if (!a) throw new Error("no array " + name);
    return a;
  }
  function has(name) { return !!(name && A[name]); }
  function at(name, idx) {                 // row-major index arithmetic
    const a = arr(name);
    if (a.axes) idx = a.axes.map((p) => idx[p]);   // stored in another axis order
    let off = 0;
    for (let d = 0; d < a.shape.length; d++) off = off * a.shape[d] + idx[d];
    return a.data[off];
  }
  function absMax(name) {
    const a = arr(name);
    if (a._amax !== undefined) return a._amax;
    let m = 0;
    for (let i = 0; i < a.data.length; i++) { const v = Math.abs(a.data[i]); if (v > m && isFinite(v)) m = v; }
    a._amax = m;
    return m;
  }
  function rgb(v, lim, gray) {             // [r, g, b] of a value on a row's scale
    if (!isFinite(v)) return [200, 200, 200];
    if (gray) { const g = Math.round(255 * Math.max(0, Math.min(1, v / (lim || 1)))); return [g, g, g]; }
    const t = lim > 0 ? Math.max(-1, Math.min(1, v / lim)) : 0;
    if (t >= 0) return [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t))];
    return [Math.round(255 * (1 + t)), Math.round(255 * (1 + t)), 255];
  }
  function paint(g, width, height, cell, value, lim, gray, top) {   // one ImageData, no per-cell calls
    const img = g.createImageData(width * cell, height * cell), px = img.data, rowLen = width * cell * 4;
    for (let m = 0; m < height; m++) for (let k = 0; k < width; k++) {
      const [r, gg, b] = rgb(value(m, k), lim, gray);
      for (let y = 0; y < cell; y++) {
        let o = (m * cell + y) * rowLen + k * cell * 4;
        for (let x = 0; x < cell; x++, o += 4) { px[o] = r; px[o + 1] = gg; px[o + 2] = b; px[o + 3] = 255; }
      }
    }
    g.putImageData(img, 0, top || 0);
  }

  // ------------------------------------------------------------------ decoding
  function b64bytes(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  const SIZE = { f4: 4, i2: 2, i4: 4 };
  function typed(buf, code) {
    return code === "f4" ? new Float32Array(buf) : code === "i2" ? new Int16Array(buf) : new Int32Array(buf);
  }
  function unshuffle(raw, code, off, count) {    // byte planes back into numbers
    const size = SIZE[code], buf = new ArrayBuffer(count * size), out = new Uint8Array(buf);
    for (let b = 0; b < size; b++) {
      const plane = off + b * count;
      for (let i = 0; i < count; i++) out[i * size + b] = raw[plane + i];
    }
    return typed(buf, code);
  }
  function entry(raw, code, shape, off, n, count, axes) {
    const total = shape.reduce((a, b) => a * b, 1);
    let data;
    if (count < 0) data = unshuffle(raw, code, off, total);
    else {                                      // sparse: a bit per entry, then the non-zero values
      const nBits = Math.ceil(total / 8), values = unshuffle(raw, code, off + nBits, count);
      data = typed(new ArrayBuffer(total * SIZE[code]), code);
      let j = 0;
      for (let i = 0; i < total; i++) if (raw[off + (i >> 3)] & (128 >> (i & 7))) data[i] = values[j++];
    }
    return { data, shape, axes };
  }
  async function decode(packed) {
    const raw = await inflate(b64bytes(packed.blob));
    const out = {};
    for (const [name, e] of Object.entries(packed.index)) out[name] = entry(raw, ...e);
    return out;
  }

  // ------------------------------------------------------------------ drawing maps
  // one canvas per channel; `cell` px per value; onclick(c, m, k)
  function mapCanvas(name, c, lim, cell, gray, onclick, mark) {
    const a = arr(name);
    const [H, W] = a.shape.length === 3 ? a.shape.slice(1) : [1, a.shape[a.shape.length - 1]];
    const cv = document.createElement("canvas");
    cv.width = W * cell; cv.height = H * cell;
    cv.dataset.array = name; cv.dataset.channel = c; cv.dataset.cell = cell;
    cv.dataset.h = H; cv.dataset.w = W;
    const g = cv.getContext("2d");
    const base = a.shape.length === 3 ? c * H * W : 0;
    paint(g, W, H, cell, (m, k) => a.data[base + m * W + k], lim, gray);
    if (mark) mark(g, cell);
    cv.title = `${name} channel ${c}: click a value`;
    cv.addEventListener("click", (e) => {
      const r = cv.getBoundingClientRect();
      const k = Math.floor((e.clientX - r.left) / (r.width / W));
      const m = Math.floor((e.clientY - r.top) / (r.height / H));
      onclick(c, Math.min(m, H - 1), Math.min(k, W - 1));
    });
    return cv;
  }
  function cellSize(H, W, C) {
    const budget = C > 16 ? 44 : C > 4 ? 64 : 120;
    return Math.max(2, Math.min(16, Math.floor(budget / Math.max(H, W))));
  }
  function outline(g, cell, rows, cols, colourName, width) {
    g.strokeStyle = colourName; g.lineWidth = width || 2;
    g.strokeRect(cols[0] * cell + 1, rows[0] * cell + 1, (cols[1] - cols[0]) * cell - 2, (rows[1] - rows[0]) * cell - 2);
  }

  // ------------------------------------------------------------------ tables
  function gridTable(rows, cols, value, cls, attrs) {
    let h = '<table class="grid">';
    for (let i = 0; i < rows; i++) {
      h += "<tr>";
      for (let j = 0; j < cols; j++) {
        const v = value(i, j);
        const c = cls ? cls(i, j) : "";
        const at2 = attrs ? attrs(i, j) : "";
        h += `<td class="${c}" ${at2}>${typeof v === "string" ? v : fmt(v)}</td>`;
      }
      h += "</tr>";
    }
    return h + "</table>";
  }

  // ------------------------------------------------------------------ state
  const S = { view: "v-forward", fsel: null, bsel: null, kernel: { layer: null, o: 0, c: 0 } };
  function layerInput(i) { return i === 0 ? "input" : META.layers[i - 1].arrays.out; }
  function layerInShape(i) { return META.layers[i].in_shape; }
  function nextLayer(i) { return META.layers[i + 1]; }

  // ------------------------------------------------------------------ header
  function header() {
    const cls = META.classes;
    const p = META.prediction, lab = META.label;
    $("#facts").innerHTML =
      `model: ${esc(META.model_source || "")} &middot; input: ${esc(META.input_source || "")}` +
      ` &middot; prediction: <b id="pred">${esc(cls[p])}</b> (p = ${fmt(META.probs[p])})` +
      (lab !== null && lab !== undefined ? ` &middot; true label: <b>${esc(cls[lab])}</b>` : "") +
      ` &middot; ${META.dtype}`;
  }

  // ------------------------------------------------------------------ forward view
  function rowTitle(i, l) {
    const sec = l.kind === "conv" ? "7" : l.kind === "pool" || l.kind === "avgpool" ? "10" : l.kind === "activation" ? "7" : "";
    return `<div class="title">${i} ${esc(l.type)} <span class="shape">(${l.out_shape.join(", ")})</span>${link(sec)}</div>`;
  }
  function drawRow(parent, title, name, gray, onclick, marks, opts) {
    const div = document.createElement("div");
    div.className = "layer";
    div.innerHTML = title;
    const a = arr(name);
    const lim = gray ? 1 : absMax(name);
    const maps = document.createElement("div");
    maps.className = "maps";
    if (a.shape.length === 3) {
      const [C, H, W] = a.shape;
      const cell = cellSize(H, W, C);
      for (let c = 0; c < C; c++) {
        const cv = mapCanvas(name, c, gray ? Math.max(1, absMax(name)) : lim, cell, gray, onclick, marks ? marks(c) : null);
        if (opts && opts.selected && opts.selected(c)) cv.classList.add("sel");
        maps.appendChild(cv);
      }
    } else {
      const n = a.shape[0];
      const cols = n <= 64 ? n : n <= 256 ? 64 : 104, cell = Math.max(3, Math.min(14, Math.floor(520 / cols)));
      for (let r = 0; r * cols < n; r++) {
        const cv = document.createElement("canvas");
        const w = Math.min(cols, n - r * cols);
        cv.width = w * cell; cv.height = cell + 2;
        cv.dataset.array = name; cv.dataset.cell = cell; cv.dataset.offset = r * cols; cv.dataset.w = w; cv.dataset.h = 1;
        const g = cv.getContext("2d");
        paint(g, w, 1, cell, (m, k) => a.data[r * cols + k], lim, false, 1);
        if (marks) { const mk = marks(0); if (mk) mk(g, cell, r * cols, w); }
        cv.addEventListener("click", (e) => {
          const rect = cv.getBoundingClientRect();
          const k = Math.min(w - 1, Math.floor((e.clientX - rect.left) / (rect.width / w)));
          onclick(0, 0, r * cols + k);
        });
        maps.appendChild(cv);
      }
    }
    div.appendChild(maps);
    const sc = document.createElement("div");
    sc.className = "scale";
    sc.textContent = gray ? "pixels: black 0 to white " + fmt(Math.max(1, absMax(name))) :
      `colour scale of this row: blue -${fmt(lim)} .. white 0 .. red +${fmt(lim)}`;
    div.appendChild(sc);
    parent.appendChild(div);
    return div;
  }
  function windowMarks(i, sel) {       // where the selected output of layer i reads
    if (!sel) return null;
    const l = META.layers[sel.layer];
    if (sel.layer !== i + 1 && !(i === -1 && sel.layer === 0)) return null;
    if (l.kind === "conv") {
      const cv = l.conv, [pt, pl] = [cv.padding[0][0], cv.padding[1][0]];
      const r0 = sel.m * cv.stride[0] - pt, q0 = sel.k * cv.stride[1] - pl;
      return () => (g, cell) => outline(g, cell, [r0, r0 + cv.extent[0]], [q0, q0 + cv.extent[1]], "#e6a100", 2);
    }
    if ((l.kind === "pool" || l.kind === "avgpool") && l.pool) {
      const p = l.pool, [pt, pl] = [p.padding[0][0], p.padding[1][0]];
      const r0 = sel.m * p.stride[0] - pt, q0 = sel.k * p.stride[1] - pl;
      return (c) => c !== sel.c ? null : (g, cell) => {
        const [dh, dw] = p.dilation || [1, 1];
        outline(g, cell, [r0, r0 + dh * (p.kernel[0] - 1) + 1], [q0, q0 + dw * (p.kernel[1] - 1) + 1], "#e6a100", 2);
        if (l.kind === "pool") {
          const r = at(p.arrays.argmax, [sel.c, sel.m, sel.k, 0]), q = at(p.arrays.argmax, [sel.c, sel.m, sel.k, 1]);
          outline(g, cell, [r, r + 1], [q, q + 1], "#1a9c1a", 2);
        }
      };
    }
    if (l.kind === "activation") return (c) => c !== sel.c ? null : (g, cell) => outline(g, cell, [sel.m, sel.m + 1], [sel.k, sel.k + 1], "#e6a100", 2);
    return null;
  }
  function selfMark(i, sel) {
    if (!sel || sel.layer !== i) return null;
    return (c) => {
      if (c !== sel.c) return null;
      return (g, cell, offset, w) => {
        if (offset !== undefined) { const k = sel.k - offset; if (k >= 0 && k < w) outline(g, cell, [0, 1], [k, k + 1], "#000", 2); return; }
        outline(g, cell, [sel.m, sel.m + 1], [sel.k, sel.k + 1], "#000", 2);
      };
    };
  }
  function renderForward() {
    const ov = $("#fwd-overview");
    ov.innerHTML = "";
    const sel = S.fsel;
    const inGray = META.layers.length && true;
    drawRow(ov, `<div class="title">input <span class="shape">(${META.input_shape.join(", ")})</span>${link("2")}</div>`,
      "input", inGray, () => {}, windowMarks(-1, sel));
    META.layers.forEach((l, i) => {
      const last = i === META.layers.length - 1;
      const marks = (c) => {
        const a = windowMarks(i, sel), b = selfMark(i, sel);
        const fa = a ? a(c) : null, fb = b ? b(c) : null;
        if (!fa && !fb) return null;
        return (g, cell, off, w) => { if (fa) fa(g, cell, off, w); if (fb) fb(g, cell, off, w); };
      };
      drawRow(ov, rowTitle(i, l), l.arrays.out, false, (c, m, k) => selectForward(i, c, m, k), marks);
      if (last) {
        const div = document.createElement("div");
        div.className = "layer";
        let h = `<div class="title">class probabilities: softmax of layer ${i}'s logits</div><div class="probs" id="probs">`;
        META.probs.forEach((p, k) => {
          const cl = (k === META.prediction ? " pred" : "") + (k === T.k ? " target" : "");
          h += `<div class="prob${cl}" data-class="${k}"><span class="cls">${esc(META.classes[k]).padStart(3)}</span>` +
            `<span class="bar" style="width:${Math.max(1, Math.round(p * 300))}px"></span><span class="pv">${fmt(p)}</span></div>`;
        });
        div.innerHTML = h + "</div>";
        div.querySelectorAll(".prob").forEach((el) => el.addEventListener("click", () => selectSoftmax(+el.dataset.class)));
        ov.appendChild(div);
      }
    });
  }
  function selectForward(i, c, m, k) {
    S.fsel = { layer: i, c, m, k };
    renderForward();
    const l = META.layers[i];
    const d = $("#fwd-detail");
    try {
      if (l.kind === "conv") d.innerHTML = convDetail(i, c, m, k);
      else if (l.kind === "pool") d.innerHTML = poolDetail(i, c, m, k);
      else if (l.kind === "avgpool") d.innerHTML = avgDetail(i, c, m, k);
      else if (l.kind === "dense") d.innerHTML = denseDetail(i, k);
      else if (l.kind === "activation") d.innerHTML = actDetail(i, c, m, k);
      else if (l.kind === "flatten") d.innerHTML = flattenDetail(i, k);
      else if (l.kind === "batchnorm") d.innerHTML = bnDetail(i, c, m, k);
      else d.innerHTML = valueDetail(i, c, m, k);
    } catch (e) { d.innerHTML = `<p class="err">${esc(e.message)}</p>`; }
    bindDetail(d);
  }
  function bindDetail(d) {
    d.querySelectorAll("[data-more]").forEach((b) => b.addEventListener("click", () => {
      const t = document.getElementById(b.dataset.more); t.style.display = t.style.display === "none" ? "" : "none";
    }));
  }
  function valueAt(name, c, m, k) {
    const a = arr(name);
    return a.shape.length === 3 ? at(name, [c, m, k]) : a.data[k];
  }
  function needDetails() {
    return META.details ? "" : '<p class="note">The breakdowns are being computed...</p>';
  }
  function convDetail(i, o, m, k) {
    const l = META.layers[i], cv = l.conv, n = cv.arrays;
    const [Cin] = l.in_shape, [fh, fw] = cv.kernel, [sh, sw] = cv.stride, [dh, dw] = cv.dilation;
    const G = cv.groups || 1, cg = Cin / G, grp = Math.floor(o / (l.out_shape[0] / G));
    const next = nextLayer(i);
    let h = `<h3>Layer ${i} Conv2D: output channel ${o}, row ${m}, column ${k}</h3>` +
      `<div class="formula">Z[o,m,k] = &Sigma;_c &Sigma;_i &Sigma;_j W[o,c,i,j] &middot; A_pad[c, m&middot;${sh}+i&middot;${dh}, k&middot;${sw}+j&middot;${dw}] + b[o]\n` +
      `(cross-correlation; padding ${esc(JSON.stringify(cv.padding_arg))} = top ${cv.padding[0][0]}, bottom ${cv.padding[0][1]}, left ${cv.padding[1][0]}, right ${cv.padding[1][1]})` +
      (G > 1 ? `\ngroups = ${G}: output ${o} is in group ${grp} and sees its ${cg} input channel(s) ${grp * cg}..${grp * cg + cg - 1} only${G === Cin ? " (depthwise)" : ""}` : "") +
      `</div><p>${link("6", "fig. 7")} &middot; ${link("7")}</p>`;
    if (!has(n.products)) return h + needDetails();
    h += `<p class="note">Per input channel c: the window of A_pad (yellow; cells of the padding grey), &times; the kernel W[${o},c], = the products; their sum is the channel's share.</p><div id="conv-channels">`;
    for (let c = 0; c < cg; c++) {
      const ci = grp * cg + c, r0 = m * sh, q0 = k * sw;   // ci: the input channel, c: its place in the kernel
      const win = gridTable(fh, fw, (a, b) => at(n.a_pad, [ci, r0 + a * dh, q0 + b * dw]), (a, b) => {
        const r = r0 + a * dh - cv.padding[0][0], q = q0 + b * dw - cv.padding[1][0];
        return r < 0 || q < 0 || r >= l.in_shape[1] || q >= l.in_shape[2] ? "pad" : "hl";
      }, (a, b) => `data-role="window" data-c="${ci}" data-i="${a}" data-j="${b}"`);
      const ker = gridTable(fh, fw, (a, b) => at(n.weight, [o, c, a, b]), null, (a, b) => `data-role="kernel" data-c="${ci}" data-i="${a}" data-j="${b}"`);
      const prod = gridTable(fh, fw, (a, b) => at(n.products, [o, m, k, c, a, b]), null, (a, b) => `data-role="product" data-c="${ci}" data-i="${a}" data-j="${b}"`);
      h += `<span class="chan"><span class="lbl">c=${ci}</span>${win}<span class="op">&times;</span>${ker}<span class="op">=</span>${prod}` +
        `<span class="op">&Sigma;</span><span class="result" data-role="channel-sum" data-c="${ci}">${fmt(at(n.channel_sums, [o, m, k, c]))}</span></span>`;
    }
    h += "</div>";
    const b = cv.has_bias ? at(n.bias, [o]) : 0;
    const zr = at(n.z_ref, [o, m, k]), zm = at(l.arrays.out, [o, m, k]);
    h += `<div class="result">&Sigma;_c channel sums + b[${o}] (<span data-role="bias">${fmt(b)}</span>) = Z = <b data-role="z">${fmt(zr)}</b> ` +
      `<span class="note">(reference.py, loop by loop; the model's own forward gave <span data-role="z-model">${fmt(zm)}</span>)</span></div>`;
    if (next && next.kind === "activation") {
      h += `<div class="result">A = ${esc(next.activation)}(Z) = <b data-role="activation">${fmt(at(next.arrays.out, [o, m, k]))}</b> <span class="note">(layer ${i + 1})</span></div>`;
    }
    return h;
  }
  function poolDetail(i, c, m, k) {
    const l = META.layers[i];
    let h = `<h3>Layer ${i} MaxPool2D: channel ${c}, row ${m}, column ${k}</h3>` +
      `<div class="formula">Z[c,m,k] = max over the ${l.in_shape.length ? "" : ""}window A[c, m&middot;s+i, k&middot;s+j], i,j &lt; f</div><p>${link("10")}</p>`;
    if (!l.pool) return h + needDetails();
    const p = l.pool, [fh, fw] = p.kernel, [sh, sw] = p.stride, [pt, pl] = [p.padding[0][0], p.padding[1][0]], [dh, dw] = p.dilation || [1, 1];
    const src = layerInput(i);
    const wr = at(p.arrays.argmax, [c, m, k, 0]), wq = at(p.arrays.argmax, [c, m, k, 1]);
    h += gridTable(fh, fw, (a, b) => {
      const r = m * sh + a * dh - pt, q = k * sw + b * dw - pl;
      return r < 0 || q < 0 || r >= l.in_shape[1] || q >= l.in_shape[2] ? "pad" : fmt(at(src, [c, r, q]));
    }, (a, b) => {
      const r = m * sh + a * dh - pt, q = k * sw + b * dw - pl;
      return r === wr && q === wq ? "win" : (r < 0 || q < 0 || r >= l.in_shape[1] || q >= l.in_shape[2] ? "pad" : "hl");
    }, (a, b) => `data-role="pool-window" data-i="${a}" data-j="${b}"`);
    h += `<div class="result">winner (green): input row ${wr}, column ${wq} ` +
      `&rarr; Z = <b data-role="pool-out">${fmt(at(p.arrays.z_ref, [c, m, k]))}</b> <span class="note">(reference.py; the model gave <span data-role="pool-model">${fmt(at(l.arrays.out, [c, m, k]))}</span>)</span></div>` +
      `<p class="note">Ties: the first maximum in row-major order wins (as PyTorch); padding never wins. Backward sends dZ to the winner only (${link("11")}).</p>`;
    return h;
  }
  function avgDetail(i, c, m, k) {
    const l = META.layers[i];
    let h = `<h3>Layer ${i} AvgPool2D: channel ${c}, row ${m}, column ${k}</h3><p>${link("10")}</p>`;
    if (!l.pool) return h + needDetails();
    const p = l.pool, src = layerInput(i), [pt, pl] = [p.padding[0][0], p.padding[1][0]];
    h += gridTable(p.kernel[0], p.kernel[1], (a, b) => {
      const r = m * p.stride[0] + a - pt, q = k * p.stride[1] + b - pl;
      return r < 0 || q < 0 || r >= l.in_shape[1] || q >= l.in_shape[2] ? "pad" : fmt(at(src, [c, r, q]));
    }, () => "hl");
    h += `<div class="result">sum / ${at(p.arrays.divisors, [m, k])} = <b data-role="pool-out">${fmt(at(p.arrays.z_ref, [c, m, k]))}</b></div>`;
    return h;
  }
  function flatIndexText(i, idx) {
    const prev = i > 0 ? META.layers[i - 1] : null;
    const shape = prev ? prev.out_shape : META.input_shape;
    if (shape.length !== 3) return "";
    const [, H, W] = shape;
    const c = Math.floor(idx / (H * W)), r = Math.floor((idx % (H * W)) / W), q = idx % W;
    return ` = channel ${c}, row ${r}, column ${q} of (${shape.join(", ")})`;
  }
  function flattenDetail(i, k) {
    return `<h3>Layer ${i} Flatten: value ${k}</h3><p>Flatten lays the (C, H, W) values out in one row, channel by channel, row by row: index ${k}${flatIndexText(i, k)}.</p>` +
      `<div class="result">value <b>${fmt(at(META.layers[i].arrays.out, [k]))}</b></div>`;
  }
  function denseDetail(i, o) {
    const l = META.layers[i], d = l.dense, n = d.arrays, src = layerInput(i);
    const nIn = l.in_shape[0];
    let h = `<h3>Layer ${i} Dense: output ${o}</h3><div class="formula">y[o] = &Sigma;_i x[i] &middot; W[o,i] + b[o]    (${nIn} terms)</div>`;
    if (!has(n.products)) return h + needDetails();
    const order = [...Array(nIn).keys()].sort((a, b) => Math.abs(at(n.products, [o, b])) - Math.abs(at(n.products, [o, a])));
    const row = (idx) => `<tr data-role="dense-term" data-i="${idx}"><td>${idx}</td><td>${fmt(at(src, [idx]))}</td><td>${fmt(at(n.weight, [o, idx]))}</td><td data-role="dense-product">${fmt(at(n.products, [o, idx]))}</td></tr>`;
    h += `<p class="note">The ${Math.min(12, nIn)} largest terms by |x&middot;W| (all ${nIn} below):</p><table class="terms"><tr><th>i</th><th>x[i]</th><th>W[o,i]</th><th>x&middot;W</th></tr>` +
      order.slice(0, 12).map(row).join("") + "</table>";
    h += `<button data-more="dense-all">show all ${nIn} terms</button><div id="dense-all" style="display:none"><table class="terms">` + order.map(row).join("") + "</table></div>";
    const b = d.has_bias ? at(n.bias, [o]) : 0;
    h += `<div class="result">&Sigma; + b[${o}] (<span data-role="bias">${fmt(b)}</span>) = y = <b data-role="dense-out">${fmt(at(n.y_ref, [o]))}</b> <span class="note">(reference.py; the model gave <span data-role="dense-model">${fmt(at(l.arrays.out, [o]))}</span>)</span></div>`;
    const next = nextLayer(i);
    if (next && next.kind === "activation") h += `<div class="result">A = ${esc(next.activation)}(y) = <b>${fmt(at(next.arrays.out, [o]))}</b></div>`;
    if (i === META.layers.length - 1) h += '<p class="note">These are the logits; the softmax turns them into the probabilities (click a probability).</p>';
    return h;
  }
  function actDetail(i, c, m, k) {
    const l = META.layers[i], src = layerInput(i);
    const z = valueAt(src, c, m, k), a = valueAt(l.arrays.out, c, m, k);
    const f = { ReLU: "max(Z, 0)", Sigmoid: "1 / (1 + exp(-Z))", Tanh: "tanh(Z)", LeakyReLU: "Z if Z > 0 else slope&middot;Z", Softmax: "exp(Z) / &Sigma; exp" }[l.activation] || l.activation;
    return `<h3>Layer ${i} ${esc(l.type)}: channel ${c}, row ${m}, column ${k}</h3><div class="formula">A = g(Z) = ${f}</div><p>${link("7")}</p>` +
      `<div class="result">Z = <span data-role="act-in">${fmt(z)}</span> &rarr; A = <b data-role="act-out">${fmt(a)}</b></div>`;
  }
  function bnDetail(i, c, m, k) {
    const l = META.layers[i], b = l.batchnorm;
    let h = `<h3>Layer ${i} BatchNorm2D: channel ${c}, row ${m}, column ${k}</h3>` +
      '<div class="formula">xhat = (x - mu[c]) &middot; invstd[c],   invstd[c] = 1 / sqrt(var[c] + eps)\ny = gamma[c] &middot; xhat + beta[c]\n' +
      "(as predict runs it: the running mean and variance gathered in training)</div>";
    if (!b) return h + needDetails();
    const n = b.arrays;
    h += `<div class="result">x = ${fmt(valueAt(layerInput(i), c, m, k))}, mu = ${fmt(at(n.mean, [c]))}, var = ${fmt(at(n.var, [c]))}, ` +
      `eps = ${b.eps}, invstd = ${fmt(at(n.invstd, [c]))}</div>` +
      `<div class="result">xhat = <b data-role="bn-xhat">${fmt(at(n.xhat, [c, m, k]))}</b>; gamma = ${fmt(at(n.gamma, [c]))}, beta = ${fmt(at(n.beta, [c]))}</div>` +
      `<div class="result">y = <b data-role="bn-out">${fmt(at(n.y_ref, [c, m, k]))}</b> <span class="note">(reference.py; the model gave ${fmt(valueAt(l.arrays.out, c, m, k))})</span></div>`;
    return h;
  }
  function valueDetail(i, c, m, k) {
    const l = META.layers[i];
    return `<h3>Layer ${i} ${esc(l.type)}</h3><p>value <b>${fmt(valueAt(l.arrays.out, c, m, k))}</b>; this layer has no breakdown in the explorer yet.</p>`;
  }
  function selectSoftmax(kk) {
    const s = META.softmax, last = META.layers[META.layers.length - 1];
    let h = `<h3>Softmax: class ${esc(META.classes[kk])}</h3><div class="formula">p_k = e_k / &Sigma;_j e_j,   e_k = exp(z_k - max z),   max z = ${fmt(s.max)}</div>` +
      '<table class="terms"><tr><th>class</th><th>logit z_k</th><th>e_k</th><th>p_k</th></tr>';
    META.classes.forEach((name, k) => {
      h += `<tr data-role="softmax-row" data-k="${k}" class="${k === kk ? "sel" : ""}"><td>${esc(name)}</td><td>${fmt(at(last.arrays.out, [k]))}</td>` +
        `<td data-role="exp">${fmt(at(s.arrays.exps, [k]))}</td><td data-role="prob">${fmt(at(s.arrays.probs, [k]))}</td></tr>`;
    });
    h += `</table><div class="result">&Sigma;_j e_j = <b data-role="exp-sum">${fmt(s.sum)}</b>; p_${esc(META.classes[kk])} = ${fmt(at(s.arrays.exps, [kk]))} / ${fmt(s.sum)} = <b data-role="softmax-p">${fmt(at(s.arrays.probs, [kk]))}</b></div>`;
    S.fsel = null;
    $("#fwd-detail").innerHTML = h;
  }

  // ------------------------------------------------------------------ backward view
  function renderBackward() {
    if (S.view !== "v-backward") { S.backwardStale = true; return; }
    S.backwardStale = false;
    const ov = $("#bwd-overview");
    ov.innerHTML = "";
    const cls = META.classes;
    const picker = Object.keys(META.backward);
    let h = `<div class="controls"><label>back-propagated class <select id="target">`;
    cls.forEach((name, k) => {
      const ok = picker.includes(String(k));
      h += `<option value="${k}" ${k === T.k ? "selected" : ""} ${ok ? "" : (CC.live ? "" : "disabled")}>${esc(name)}${ok ? "" : " (not in this file)"}</option>`;
    });
    h += `</select></label><span>loss L = -log p_${esc(cls[T.k])} = <b id="loss">${fmt(T.loss)}</b></span></div>`;
    h += '<div class="layer"><div class="title">dL/dlogits = p - onehot(class)</div>' +
      gridTable(1, cls.length, (a, b) => T.dlogits[b], (a, b) => b === T.k ? "hl" : "", (a, b) => `data-role="dlogit" data-k="${b}"`) + "</div>";
    ov.insertAdjacentHTML("beforeend", h);
    $("#target").addEventListener("change", (e) => CC.setTarget(+e.target.value));
    const sel = S.bsel;
    const mark = (name) => (c) => sel && sel.array === name && sel.c === c ? (g, cell, off, w) => {
      if (off !== undefined) { const k = sel.k - off; if (k >= 0 && k < w) outline(g, cell, [0, 1], [k, k + 1], "#000", 2); return; }
      outline(g, cell, [sel.m, sel.m + 1], [sel.k, sel.k + 1], "#000", 2);
    } : null;
    ov.insertAdjacentHTML("beforeend", '<p class="note">From the logits back to the input, as the gradient flows:</p>');
    [...META.layers.keys()].reverse().forEach((i) => {
      const l = META.layers[i], g = T.layers[i].grad;
      const what = l.kind === "conv" ? "dZ" : l.kind === "activation" ? "dA" : "dL/d output";
      const sec = l.kind === "conv" ? "9" : l.kind === "pool" ? "11" : "";
      drawRow(ov, `<div class="title">${i} ${esc(l.type)}: ${what} <span class="shape">(${l.out_shape.join(", ")})</span>${link(sec)}</div>`,
        g, false, (c, m, k) => selectBackward(i, c, m, k), mark(g));
      if (l.kind === "conv") ov.appendChild(kernelPicker(i));
    });
    drawRow(ov, `<div class="title">dL/d input <span class="shape">(${META.input_shape.join(", ")})</span> <span class="note">click a pixel: its dA</span></div>`,
      T.grad_input, false, (c, m, k) => selectBackward(-1, c, m, k), mark(T.grad_input));
  }
  function kernelPicker(i) {
    const l = META.layers[i], cv = l.conv;
    const div = document.createElement("div");
    div.className = "layer";
    const K = S.kernel.layer === i ? S.kernel : { layer: i, o: 0, c: 0 };
    const [Cout, Cin] = [l.out_shape[0], l.in_shape[0] / (cv.groups || 1)];   // c: the kernel's channel
    let h = `<div class="title">${i} Conv2D kernel W[o, c] and dW[o, c]: click a weight for its dW ${link("9")}</div><div class="controls">` +
      `<label>o <input type="number" min="0" max="${Cout - 1}" value="${K.o}" data-k="o"></label>` +
      `<label>c <input type="number" min="0" max="${Cin - 1}" value="${K.c}" data-k="c"></label></div>`;
    h += `<span class="chan"><span class="lbl">W</span>` + gridTable(cv.kernel[0], cv.kernel[1], (a, b) => at(cv.arrays.weight, [K.o, K.c, a, b]), () => "click",
      (a, b) => `data-role="weight" data-layer="${i}" data-i="${a}" data-j="${b}"`) + "</span>";
    h += `<span class="chan"><span class="lbl">dW</span>` + gridTable(cv.kernel[0], cv.kernel[1], (a, b) => at(T.layers[i].dw, [K.o, K.c, a, b]), () => "click",
      (a, b) => `data-role="dweight" data-layer="${i}" data-i="${a}" data-j="${b}"`) + "</span>";
    div.innerHTML = h;
    div.querySelectorAll("input").forEach((inp) => inp.addEventListener("change", () => {
      const v = Math.max(0, Math.min(+inp.max, Math.floor(+inp.value || 0)));
      S.kernel = { ...K, layer: i, [inp.dataset.k]: v };
      renderBackward();
    }));
    div.querySelectorAll("td.click").forEach((td) => td.addEventListener("click", () => selectWeight(i, K.o, K.c, +td.dataset.i, +td.dataset.j)));
    return div;
  }
  function selectWeight(i, o, c, a, b) {
    const l = META.layers[i], cv = l.conv, n = T.layers[i];
    const [Hout, Wout] = l.out_shape.slice(1);
    let h = `<h3>Layer ${i}: dW[${o}, ${c}, ${a}, ${b}]</h3><div class="formula">dW[o,c,i,j] = &Sigma;_m &Sigma;_k A_pad[c, m&middot;s+i&middot;d, k&middot;s+j&middot;d] &middot; dZ[o,m,k]\n` +
      `one weight touches every output of its channel (parameter sharing, MATH.md §8): ${Hout}&times;${Wout} terms</div><p>${link("9")}</p>`;
    if (!has(n.dw_terms)) return showB(h + needDetails());
    h += '<p class="note">Each term (m, k): the input value the weight met at output (m, k), times dZ[o, m, k]:</p>';
    h += gridTable(Hout, Wout, (m, k) => at(n.dw_terms, [o, m, k, c, a, b]), (m, k) => at(n.dw_terms, [o, m, k, c, a, b]) !== 0 ? "hl" : "",
      (m, k) => `data-role="dw-term" data-m="${m}" data-k="${k}"`);
    h += `<div class="result">&Sigma; = dW = <b data-role="dw">${fmt(at(n.dw_ref, [o, c, a, b]))}</b> <span class="note">(reference.py; the model's backward gave <span data-role="dw-model">${fmt(at(n.dw, [o, c, a, b]))}</span>)</span></div>`;
    S.kernel = { layer: i, o, c };
    showB(h);
  }
  function showB(h) { const d = $("#bwd-detail"); d.innerHTML = h; bindDetail(d); }
  function selectBackward(i, c, m, k) {
    const name = i < 0 ? T.grad_input : T.layers[i].grad;
    S.bsel = { array: name, layer: i, c, m, k };
    renderBackward();
    const next = META.layers[i + 1];
    try {
      if (next && next.kind === "conv") return showB(daDetail(i + 1, c, m, k));
      if (next && next.kind === "pool") return showB(routeInDetail(i + 1, c, m, k));
      if (next && next.kind === "dense") return showB(denseBackDetail(i + 1, k));
      const l = META.layers[i];
      if (l && l.kind === "pool") return showB(routeOutDetail(i, c, m, k));
      if (l && l.kind === "conv" && next && next.kind === "activation") return showB(dzDetail(i, c, m, k));
      showB(`<h3>${i < 0 ? "input" : "layer " + i} gradient</h3><div class="result">value <b data-role="grad">${fmt(valueAt(name, c, m, k))}</b></div>`);
    } catch (e) { showB(`<p class="err">${esc(e.message)}</p>`); }
  }
  function dzDetail(i, o, m, k) {
    const next = META.layers[i + 1];
    const z = at(META.layers[i].arrays.out, [o, m, k]), da = at(T.layers[i + 1].grad, [o, m, k]), dz = at(T.layers[i].grad, [o, m, k]);
    return `<h3>Layer ${i}: dZ[${o}, ${m}, ${k}]</h3><div class="formula">dZ = dA &odot; g'(Z)   (g = ${esc(next.activation)})</div><p>${link("9")}</p>` +
      `<div class="result">Z = ${fmt(z)}, dA = <span data-role="da">${fmt(da)}</span> &rarr; dZ = <b data-role="dz">${fmt(dz)}</b></div>` +
      `<p class="note">For ReLU g'(Z) is 1 where Z &gt; 0 and 0 elsewhere: dZ is dA where the unit was active.</p>`;
  }
  function daDetail(i, c, r, q) {
    // dA[c, r, q] of conv layer i's input, as the full convolution of the padded dZ
    const l = META.layers[i], cv = l.conv, n = T.layers[i];
    const [eh, ew] = cv.extent, [fh, fw] = cv.kernel, [dh, dw] = cv.dilation;
    const G = cv.groups || 1, og = l.out_shape[0] / G, cg = l.in_shape[0] / G, grp = Math.floor(c / cg), cl = c % cg;
    const [pt, pl] = [cv.padding[0][0], cv.padding[1][0]];
    let h = `<h3>Layer ${i} backward: dA[${c}, ${r}, ${q}] of its input</h3>` +
      `<div class="formula">dA_pad[c, r, q] = &Sigma;_o &Sigma;_u &Sigma;_v W_rot[o,c,u,v] &middot; dZ_full[o, r+u, q+v]\n` +
      `1. dZ with s-1 = ${cv.stride[0] - 1} zero(s) between its entries (undoes the stride); 2. the kernel rotated 180&deg; (W_rot[u,v] = W[f-1-u, f-1-v]); ` +
      `3. a border of e-1 = ${eh - 1} zeros (the "full" convolution); 4. slide and sum over o; 5. crop the padding (here r+${pt}, q+${pl} in A_pad).</div>` +
      `<p>${link("9", "fig. 11")}</p>`;
    if (!has(n.da_channel_sums)) return h + needDetails();
    const R = r + pt, Q = q + pl;       // row, column in dA_pad
    h += `<p class="note">Per output channel o: the ${eh}&times;${ew} patch of dZ_full at (${R}, ${Q}), &times; W_rot[o, ${c}], = the products, &Sigma;.</p><div id="da-channels">`;
    const showProducts = has(n.da_products);
    if (G > 1) h += `<p class="note">groups = ${G}: input channel ${c} feeds only the ${og} output channel(s) of its group ${grp}.</p>`;
    for (let j = 0; j < og; j++) {
      const o = grp * og + j;                      // the output channel; j: its place in the group
      const patch = gridTable(eh, ew, (u, v) => at(n.dz_full, [o, R + u, Q + v]), (u, v) => at(n.dz_full, [o, R + u, Q + v]) !== 0 ? "hl" : "",
        (u, v) => `data-role="dz-full" data-o="${o}" data-u="${u}" data-v="${v}"`);
      const rot = gridTable(eh, ew, (u, v) => (u % dh || v % dw) ? 0 : at(cv.arrays.weight, [o, cl, fh - 1 - u / dh, fw - 1 - v / dw]), null,
        (u, v) => `data-role="w-rot" data-o="${o}" data-u="${u}" data-v="${v}"`);
      const prod = showProducts ? gridTable(eh, ew, (u, v) => at(n.da_products, [c, r, q, j, u, v]), null,
        (u, v) => `data-role="da-product" data-o="${o}" data-u="${u}" data-v="${v}"`) : "";
      h += `<span class="chan"><span class="lbl">o=${o}</span>${patch}<span class="op">&times;</span>${rot}${showProducts ? '<span class="op">=</span>' + prod : ""}` +
        `<span class="op">&Sigma;</span><span class="result" data-role="da-channel-sum" data-o="${o}">${fmt(at(n.da_channel_sums, [c, r, q, j]))}</span></span>`;
    }
    h += "</div>";
    if (!showProducts) h += '<p class="note">(The products of this layer are left out of the file to keep it small; the sums per output channel are shipped.)</p>';
    const model = i === 0 ? at(T.grad_input, [c, r, q]) : at(T.layers[i - 1].grad, [c, r, q]);
    h += `<div class="result">&Sigma;_o = dA = <b data-role="da">${fmt(at(n.dx_ref, [c, r, q]))}</b> <span class="note">(reference.py; the model's backward gave <span data-role="da-model">${fmt(model)}</span>)</span></div>`;
    return h;
  }
  function denseBackDetail(i, j) {
    // dA[j] of dense layer i's input: sum over the outputs o of dZ[o] W[o, j]
    const l = META.layers[i], n = T.layers[i], nOut = l.out_shape[0];
    let h = `<h3>Layer ${i} Dense backward: dA[${j}] of its input</h3><div class="formula">dA[j] = &Sigma;_o dZ[o] &middot; W[o, j]    (${nOut} terms)</div>`;
    if (!has(n.dx_terms)) return h + needDetails();
    const order = [...Array(nOut).keys()].sort((a, b) => Math.abs(at(n.dx_terms, [b, j])) - Math.abs(at(n.dx_terms, [a, j])));
    const row = (o) => `<tr data-role="dense-back-term"><td>${o}</td><td>${fmt(at(n.grad, [o]))}</td><td>${fmt(at(l.dense.arrays.weight, [o, j]))}</td><td data-role="dense-back-product">${fmt(at(n.dx_terms, [o, j]))}</td></tr>`;
    h += `<table class="terms"><tr><th>o</th><th>dZ[o]</th><th>W[o,j]</th><th>dZ&middot;W</th></tr>${order.slice(0, 12).map(row).join("")}</table>`;
    if (nOut > 12) h += `<button data-more="dense-back-all">show all ${nOut} terms</button><div id="dense-back-all" style="display:none"><table class="terms">${order.map(row).join("")}</table></div>`;
    const model = i === 0 ? at(T.grad_input, [j]) : valueAt(T.layers[i - 1].grad, 0, 0, j);
    h += `<div class="result">&Sigma; = dA = <b data-role="dense-back-da">${fmt(at(n.dx_ref, [j]))}</b> <span class="note">(the model's backward gave ${fmt(model)})</span></div>`;
    return h;
  }
  function routeOutDetail(i, c, m, k) {
    // where a pool output's gradient goes: to its window's winner only
    const l = META.layers[i];
    let h = `<h3>Layer ${i} MaxPool2D backward: dZ[${c}, ${m}, ${k}]</h3><div class="formula">dA[c, window(m,k)] += dZ[c,m,k] &middot; mask(m,k)   (mask: 1 at the window's max)</div><p>${link("11")}</p>`;
    if (!l.pool) return h + needDetails();
    const p = l.pool, [fh, fw] = p.kernel, [sh, sw] = p.stride, [pt, pl] = [p.padding[0][0], p.padding[1][0]], [dh, dw] = p.dilation || [1, 1];
    const wr = at(p.arrays.argmax, [c, m, k, 0]), wq = at(p.arrays.argmax, [c, m, k, 1]);
    const dz = at(T.layers[i].grad, [c, m, k]);
    const src = layerInput(i);
    h += '<span class="chan"><span class="lbl">A window</span>' + gridTable(fh, fw, (a, b) => {
      const r = m * sh + a * dh - pt, q = k * sw + b * dw - pl;
      return r < 0 || q < 0 || r >= l.in_shape[1] || q >= l.in_shape[2] ? "pad" : fmt(at(src, [c, r, q]));
    }, (a, b) => (m * sh + a * dh - pt === wr && k * sw + b * dw - pl === wq) ? "win" : "") + "</span>";
    h += '<span class="chan"><span class="lbl">mask</span>' + gridTable(fh, fw, (a, b) => (m * sh + a * dh - pt === wr && k * sw + b * dw - pl === wq) ? "1" : "0",
      (a, b) => (m * sh + a * dh - pt === wr && k * sw + b * dw - pl === wq) ? "win" : "", (a, b) => `data-role="mask" data-i="${a}" data-j="${b}"`) + "</span>";
    h += '<span class="chan"><span class="lbl">routed</span>' + gridTable(fh, fw, (a, b) => (m * sh + a * dh - pt === wr && k * sw + b * dw - pl === wq) ? fmt(dz) : "0",
      (a, b) => (m * sh + a * dh - pt === wr && k * sw + b * dw - pl === wq) ? "win" : "") + "</span>";
    const n = T.layers[i];
    h += `<div class="result">dZ = <b data-role="route-dz">${fmt(dz)}</b> goes to input row ${wr}, column ${wq}; dA there = <b data-role="route-da">${fmt(at(n.dx_ref, [c, wr, wq]))}</b> <span class="note">(reference.py)</span></div>`;
    return h;
  }
  function routeInDetail(i, c, r, q) {
    // what an input cell of pool layer i receives: the dZ of every window it won
    const l = META.layers[i];
    let h = `<h3>Layer ${i - 1} output, dA[${c}, ${r}, ${q}]: what max pooling (layer ${i}) routes here</h3><p>${link("11")}</p>`;
    if (!l.pool) return h + needDetails();
    const p = l.pool, [fh, fw] = p.kernel, [sh, sw] = p.stride, [pt, pl] = [p.padding[0][0], p.padding[1][0]], [dh, dw] = p.dilation || [1, 1];
    const [Ho, Wo] = l.out_shape.slice(1);
    let rows = "";
    for (let m = 0; m < Ho; m++) for (let k = 0; k < Wo; k++) {
      const r0 = m * sh - pt, q0 = k * sw - pl;
      if (r < r0 || q < q0 || (r - r0) % dh || (q - q0) % dw || (r - r0) / dh >= fh || (q - q0) / dw >= fw) continue;
      const won = at(p.arrays.argmax, [c, m, k, 0]) === r && at(p.arrays.argmax, [c, m, k, 1]) === q;
      rows += `<tr data-role="window-route"><td>(${m}, ${k})</td><td>${won ? "yes" : "no"}</td><td>${fmt(at(T.layers[i].grad, [c, m, k]))}</td><td>${won ? fmt(at(T.layers[i].grad, [c, m, k])) : "0"}</td></tr>`;
    }
    h += `<table class="terms"><tr><th>window</th><th>won?</th><th>dZ</th><th>routed</th></tr>${rows}</table>`;
    h += `<div class="result">dA = <b data-role="route-total">${fmt(at(T.layers[i].dx_ref, [c, r, q]))}</b> <span class="note">(reference.py; the model's backward gave ${fmt(at(T.layers[i - 1].grad, [c, r, q]))})</span></div>`;
    return h;
  }

  // ------------------------------------------------------------------ shape playground
  function renderShapes() {
    const v = (id) => $("#sp-" + id).value;
    const n = Math.max(1, Math.floor(+v("n") || 1)), f = Math.max(1, Math.floor(+v("f") || 1));
    const s = Math.max(1, Math.floor(+v("s") || 1)), d = Math.max(1, Math.floor(+v("d") || 1));
    const pmode = v("p").trim().toLowerCase();
    const e = d * (f - 1) + 1;
    let pb, pa, why;
    if (pmode === "valid") { pb = pa = 0; why = "valid: no padding"; }
    else if (pmode === "same") {
      const out = Math.ceil(n / s), tot = Math.max((out - 1) * s + e - n, 0);
      pb = Math.floor(tot / 2); pa = tot - pb;
      why = `same: output ceil(n/s) = ${out}; total padding max((out-1)&middot;s + d&middot;(f-1) + 1 - n, 0) = ${tot}: ${pb} before, ${pa} after (the extra at the bottom/right)`;
    } else { pb = pa = Math.max(0, Math.floor(+pmode || 0)); why = `p = ${pb} on each side`; }
    const padded = n + pb + pa;
    let h = `<div class="formula">extent of the dilated kernel  e = d&middot;(f-1) + 1 = ${d}&middot;(${f}-1) + 1 = ${e}\n${why}\n`;
    if (e > padded) {
      h += `the kernel extent ${e} is larger than the padded input ${padded}: no output</div>`;
      $("#sp-out").innerHTML = h; $("#sp-canvas").getContext("2d").clearRect(0, 0, 2000, 2000); return;
    }
    const out = Math.floor((padded - e) / s) + 1;
    h += `n_out = floor((n + p_before + p_after - e) / s) + 1 = floor((${n} + ${pb} + ${pa} - ${e}) / ${s}) + 1 = floor(${padded - e} / ${s}) + 1 = <b id="sp-result">${out}</b>\n` +
      `(the article's floor((n + 2p - f)/s) + 1 when d = 1)</div>`;
    const used = (out - 1) * s + e;
    if (used < padded) h += `<p class="note">The last ${padded - used} row(s) of the padded input are never read (the stride skips them).</p>`;
    $("#sp-out").innerHTML = h;
    const cv = $("#sp-canvas"), cell = Math.max(6, Math.min(26, Math.floor(520 / padded)));
    cv.width = padded * cell + 2; cv.height = padded * cell + 2;
    const g = cv.getContext("2d");
    g.clearRect(0, 0, cv.width, cv.height);
    for (let a = 0; a < padded; a++) for (let b = 0; b < padded; b++) {
      const inside = a >= pb && a < pb + n && b >= pb && b < pb + n;
      g.fillStyle = inside ? "#dfe8f5" : "#f2f2f2";
      g.fillRect(b * cell + 1, a * cell + 1, cell - 1, cell - 1);
    }
    const sel = Math.min(Math.max(0, Math.floor(+v("w") || 0)), out * out - 1);
    $("#sp-w").max = out * out - 1;
    const wm = Math.floor(sel / out), wk = sel % out;
    for (let m = 0; m < out; m++) for (let k = 0; k < out; k++) {  // every window's first tap
      g.fillStyle = "rgba(230,161,0,0.5)";
      g.fillRect(k * s * cell + 1 + cell / 3, m * s * cell + 1 + cell / 3, cell / 3, cell / 3);
    }
    for (let i = 0; i < f; i++) for (let j = 0; j < f; j++) {
      g.fillStyle = "rgba(214,39,40,0.55)";
      g.fillRect((wk * s + j * d) * cell + 1, (wm * s + i * d) * cell + 1, cell - 1, cell - 1);
    }
    g.strokeStyle = "#d62728"; g.lineWidth = 2;
    g.strokeRect(wk * s * cell + 1, wm * s * cell + 1, e * cell - 1, e * cell - 1);
    $("#sp-wl").textContent = `window ${sel}: output (${wm}, ${wk}) reads rows ${wm * s}..${wm * s + e - 1}, columns ${wk * s}..${wk * s + e - 1} of the padded input`;
  }

  function shapeLayers() {              // the model's conv and pool layers, to try in the playground
    const sel = $("#sp-layer");
    sel.length = 1;
    META.layers.forEach((l, i) => {
      const g = l.conv || l.pool;
      if (!g) return;
      const o = document.createElement("option");
      o.value = i; o.textContent = `${i} ${l.type} on ${l.in_shape[1]}x${l.in_shape[2]}`;
      sel.appendChild(o);
    });
  }
  function takeLayer(i) {
    const l = META.layers[i], g = l.conv || l.pool;
    if (!g) return;
    const pad = typeof g.padding_arg === "string" ? g.padding_arg : String(g.padding[0][0]);
    const set = (id, v) => { $("#sp-" + id).value = v; };
    set("n", l.in_shape[1]); set("f", g.kernel[0]); set("p", pad); set("s", g.stride[0]);
    set("d", (g.dilation || [1])[0]); set("w", 0);
    renderShapes();
  }

  // ------------------------------------------------------------------ live mode
  function liveSetup() {
    const pad = $("#pad"), g = pad.getContext("2d");
    g.fillStyle = "#000"; g.fillRect(0, 0, pad.width, pad.height);
    let drawing = false, timer = null;
    const pos = (e) => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; };
    const stroke = (e) => {
      const [x, y] = pos(e);
      g.fillStyle = "#fff"; g.beginPath(); g.arc(x, y, pad.width / 16, 0, 2 * Math.PI); g.fill();
      clearTimeout(timer); timer = setTimeout(send, 120);
    };
    pad.addEventListener("pointerdown", (e) => { drawing = true; pad.setPointerCapture(e.pointerId); stroke(e); });
    pad.addEventListener("pointermove", (e) => { if (drawing) stroke(e); });
    pad.addEventListener("pointerup", () => { drawing = false; send(); });
    $("#clear").addEventListener("click", () => { g.fillStyle = "#000"; g.fillRect(0, 0, pad.width, pad.height); send(); });
    const drop = $("#drop");
    drop.addEventListener("dragover", (e) => e.preventDefault());
    drop.addEventListener("drop", (e) => { e.preventDefault(); const f = e.dataTransfer.files[0]; if (f) upload(f); });
    $("#file").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) upload(f); });
    function send() { pad.toBlob((b) => upload(b), "image/png"); }
  }
  let seq = 0, pending = null;
  const CLIENT = Math.random().toString(36).slice(2, 14).replace(/[^a-z0-9]/g, "") || "page";
  async function upload(body, target) {
    const my = ++seq;
    if (target === undefined) target = S.target;   // the class the learner picked, if any
    CC.lastImage = body;
    $("#status").textContent = "computing...";
    try {
      const q = (target === undefined ? "" : `&target=${target}`) + (body ? "" : "&default=1");
      if (!body) body = "";                        // no drawing yet: the page's default digit
      const who = `&client=${CLIENT}&seq=${my}`;
      const fast = await fetch(`api/explore?details=0${q}${who}`, { method: "POST", body });
      if (!fast.ok) throw new Error((await fast.text()) || fast.statusText);
      const d1 = await fast.json();
      if (my !== seq) return;
      await load(d1);
      $("#status").textContent = `prediction ${META.classes[META.prediction]} (${d1.ms} ms); loading the breakdowns...`;
      if (pending) pending.abort();               // an older breakdown is no longer wanted
      pending = new AbortController();
      const full = await fetch(`api/explore?details=1${q}${who}`, { method: "POST", body, signal: pending.signal });
      if (full.status === 409 || my !== seq) return;   // a newer drawing overtook this one
      if (!full.ok) throw new Error((await full.text()) || full.statusText);
      const d2 = await full.json();
      if (my !== seq) return;
      await load(d2);
      $("#status").textContent = `prediction ${META.classes[META.prediction]}: updated in ${d1.ms} ms, breakdowns in ${d2.ms} ms`;
    } catch (e) {
      if (e.name === "AbortError") return;
      $("#status").innerHTML = `<span class="err">${esc(e.message)}</span>`;
    }
  }

  // ------------------------------------------------------------------ start
  async function load(payload) {
    const t0 = performance.now();
    A = await decode(payload.pack);
    CC.timing = { decode_ms: performance.now() - t0 };
    META = payload.meta;
    const t = String(S.target !== undefined && META.backward[String(S.target)] ? S.target : META.target);
    T = { k: +t, ...META.backward[t] };
    header();
    shapeLayers();
    const keep = S.fsel;
    renderForward();
    renderBackward();
    if (keep && META.details) selectForward(keep.layer, keep.c, keep.m, keep.k);
    CC.timing.total_ms = performance.now() - t0;
    CC.meta = META; CC.arrays = A; CC.ready = true;
    document.body.dataset.ready = "1";
    document.body.dataset.prediction = META.prediction;
  }
  CC.setTarget = (k) => {
    if (META.backward[String(k)]) { S.target = k; T = { k, ...META.backward[String(k)] }; S.bsel = null; renderForward(); renderBackward(); $("#bwd-detail").innerHTML = ""; return; }
    if (CC.live) { S.target = k; upload(CC.lastImage || null, k); }   // the server computes it
  };
  CC.select = selectForward;
  CC.selectBackward = selectBackward;
  CC.selectWeight = selectWeight;
  function tabs() {
    document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll("nav button").forEach((x) => x.classList.toggle("active", x === b));
      document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === b.dataset.view));
      S.view = b.dataset.view;
      if (S.view === "v-backward" && S.backwardStale && META) renderBackward();   // drawn when first shown
    }));
    ["n", "f", "p", "s", "d", "w"].forEach((id) => $("#sp-" + id).addEventListener("input", renderShapes));
    $("#sp-layer").addEventListener("change", (e) => { if (e.target.value !== "") takeLayer(+e.target.value); });
  }
  async function start() {
    tabs();
    renderShapes();
    CC.live = document.body.dataset.live === "1";
    if (CC.live) { $("#live").classList.add("on"); liveSetup(); }
    const packed = document.getElementById("cc-pack");
    if (packed && packed.textContent.trim()) {
      const payload = JSON.parse(packed.textContent);
      payload.pack.blob = document.getElementById("cc-blob").textContent.trim();
      await load(payload);
    } else if (CC.live) {
      const r = await fetch("api/explore?details=1&default=1", { method: "POST", body: "" });
      if (r.ok) await load(await r.json());
    }
  }
  window.addEventListener("error", (e) => CC.errors.push(String(e.message)));
  start().catch((e) => { CC.errors.push(String(e)); document.body.insertAdjacentHTML("afterbegin", `<p class="err">${esc(e.message)}</p>`); });
})();
