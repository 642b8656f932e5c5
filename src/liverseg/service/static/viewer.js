/* The study viewer: NiiVue (vendored, static/vendor/) showing the CT with HU intact and the label
   map, multiplanar with a linked crosshair, OHIF-like mouse (left: active tool, middle: pan,
   right: zoom, wheel: images), W/L presets and drag, HU under the cursor, ruler, orientation
   labels, overlay fill/outline with per-label toggles and opacity, slice numbers in the scanner's
   order with the table position, lesion navigation (centre, zoom, outline, long and short axes).
   The volumes are RAS-ordered NIfTI files of the viewer cache, so NiiVue's voxel (i, j, k) is
   the file's and its drawing bitmap has the label file's layout (see service/volumes.py). */
import {Niivue, SLICE_TYPE, DRAG_MODE, SHOW_RENDER} from "/static/vendor/niivue.min.js";

const LABEL_CMAP = {R: [0, 40, 235], G: [0, 200, 50], B: [0, 90, 50], I: [0, 1, 2], labels: ["", "liver", "tumor"]};
const HIGHLIGHT_CMAP = {R: [0, 255], G: [0, 220], B: [0, 0], A: [0, 255], I: [0, 1], labels: ["", "selected lesion"]};
const PAINT_CMAP = {R: [0, 40, 235], G: [0, 200, 50], B: [0, 90, 50], A: [0, 255, 255], I: [0, 1, 2], labels: ["", "liver", "tumor"]};
const LAYOUTS = {mpr: SLICE_TYPE.MULTIPLANAR, axial: SLICE_TYPE.AXIAL, coronal: SLICE_TYPE.CORONAL, sagittal: SLICE_TYPE.SAGITTAL};
const TOOL_MODES = {wl: DRAG_MODE.none, zoom: DRAG_MODE.none, crosshair: DRAG_MODE.crosshair, pan: DRAG_MODE.pan,
  measure: DRAG_MODE.measurement, paint: DRAG_MODE.crosshair};
const WL_GAIN = {width: 4, level: 2};  // HU per screen pixel of drag
const MAX_ZOOM = 12;

export class StudyViewer {
  /* info: GET /api/studies/{id}/viewer; canvas: the WebGL canvas; onChange(state) is called
     after every view change (status bar). */
  constructor(canvas, info, onChange) {
    this.canvas = canvas;
    this.info = info;
    this.onChange = onChange || (() => {});
    const [nx, ny, nz] = info.shape_ijk;
    this.dims = {nx, ny, nz};
    const nums = info.axial_numbers;
    this.kStep = nz > 1 && nums[1] > nums[0] ? 1 : -1;  // k direction of "next image"
    this.state = {tool: "wl", level: 50, width: 400, overlay: true, liver: true, tumor: true, outline: false,
      opacity: 0.45, layout: "mpr", selected: null, hu: null};
    this.border = null;  // Uint32Array of the selected lesion's border voxels (flat RAS indices)
    this.pending = new Map();  // coalesced updates, applied once per animation frame
    this.painting = false;
  }

  async load() {
    const probe = document.createElement("canvas").getContext("webgl2");
    if (!probe) throw new Error("this browser has no WebGL2: the viewer needs it (any current Chrome, Firefox, Edge or Safari)");
    const nv = new Niivue({
      backColor: [0, 0, 0, 1], crosshairColor: [0.25, 0.75, 1, 0.65], crosshairWidth: 1, crosshairWidthUnit: "mm",
      isRadiologicalConvention: true, isOrientationTextVisible: true, showAllOrientationMarkers: true,
      multiplanarShowRender: SHOW_RENDER.NEVER, isColorbar: false, dragAndDropEnabled: false,
      isNearestInterpolation: true, logLevel: "warn", loadingText: "loading the CT...",
      clipPlaneHotKey: "", viewModeHotKey: "", cycleClipPlaneHotKey: "",
      measureLineColor: [1, 0.55, 0, 1], measureTextColor: [1, 0.55, 0, 1], rulerColor: [1, 0.55, 0, 1], rulerWidth: 2,
      showMeasureUnits: true,
      invertScrollDirection: this.kStep < 0,  // wheel down = next image, as in a PACS
      dragMode: DRAG_MODE.none, penSize: 3, maxDrawUndoBitmaps: 24,
    });
    this.nv = nv;
    await nv.attachToCanvas(this.canvas);
    this._configureMouse();
    // Each volume added re-renders every layer (slow with software WebGL), so both are loaded
    // with their final settings: the liver window, the label colours and the overlay opacity.
    const w = this.info.windows.liver;
    this.state.level = w.level;
    this.state.width = w.width;
    nv.onVolumeAddedFromUrl = (_opts, volume) => {
      if (volume.name === "labels.nii") volume.setColormapLabel({...LABEL_CMAP, A: [0, 255, 255]});
    };
    await nv.loadVolumes([
      {url: this.info.volumes.ct, name: "ct.nii", cal_min: w.level - w.width / 2, cal_max: w.level + w.width / 2},
      {url: this.info.volumes.labels, name: "labels.nii", opacity: this.state.opacity},
    ]);
    this.ct = nv.volumes[0];
    this.seg = nv.volumes[1];
    if (this.ct.cal_min !== w.level - w.width / 2) this.setWindow(w.level, w.width);  // not taken at load
    this.labels = new Uint8Array(this.seg.img);  // pristine labels; seg.img is what is shown
    this._highlightLayer();
    nv.setSliceType(LAYOUTS.mpr);
    this._setPanZoom([0, 0, 0, 1]);
    nv.onLocationChange = () => this._changed();
    this._bindMouse();
    this._changed();
  }

  // ---------------------------------------------------------------- view state
  setWindow(level, width) {
    this.state.level = level;
    this.state.width = Math.max(1, width);
    this.ct.cal_min = level - this.state.width / 2;
    this.ct.cal_max = level + this.state.width / 2;
    this.nv.refreshLayers(this.ct, 0);  // the CT texture only: overlays are a separate texture
    this.nv.drawScene();
    this._changed();
  }

  setTool(tool) {
    if (!(tool in TOOL_MODES)) return;
    if (tool === "paint" && !this.painting) return;
    this.state.tool = tool;
    this._configureMouse();
    this._changed();
  }

  setLayout(layout) {
    this.state.layout = layout;
    this.nv.setSliceType(LAYOUTS[layout]);
    this._changed();
  }

  setOverlay(changes) {
    Object.assign(this.state, changes);
    this._later("overlay", () => this.renderOverlay());
    this._changed();
  }

  /* Run ``fn`` at the next animation frame, replacing any update of the same kind still waiting:
     a drag or a slider sends many events, but a volume texture is rebuilt once per frame at most
     (with a software WebGL renderer one rebuild can take longer than many events). */
  _later(kind, fn) {
    const first = this.pending.size === 0;
    this.pending.set(kind, fn);
    if (first) requestAnimationFrame(() => {
      const todo = [...this.pending.values()];
      this.pending.clear();
      for (const f of todo) f();
    });
  }

  /* The label layer shown: hidden labels become 0 (no fill and no outline). Fill mode: the
     opacity applies; outline mode: transparent fill, opaque borders. Only the overlay texture is
     rebuilt (not the CT's). */
  renderOverlay() {
    const s = this.state, lut = new Uint8Array(256);
    if (s.overlay) { lut[1] = s.liver ? 1 : 0; lut[2] = s.tumor ? 2 : 0; }
    const shown = this.seg.img, orig = this.labels;
    for (let x = 0; x < orig.length; x++) shown[x] = lut[orig[x]];
    const fill = s.outline ? 0 : 255;
    this.seg.setColormapLabel({...LABEL_CMAP, A: [0, fill, fill]});
    this.seg.opacity = s.outline ? 1 : s.opacity;
    this.nv.opts.atlasOutline = s.outline ? 1 : 0;
    this.nv.refreshLayers(this.seg, 1);
    if (!this.painting) this.nv.setDrawOpacity(s.overlay ? 1 : 0);  // the highlight goes with the overlay
    this.nv.drawScene();
  }

  /* The selected lesion's border voxels are painted into NiiVue's drawing layer (opaque yellow):
     updating it uploads one byte texture, much cheaper than rebuilding a volume layer. */
  _highlightLayer() {
    const nv = this.nv;
    nv.setDrawColormap(HIGHLIGHT_CMAP);
    nv.createEmptyDrawing();
    if (this.border) for (const idx of this.border) nv.drawBitmap[idx] = 1;
    nv.setDrawOpacity(this.state.overlay ? 1 : 0);
    nv.refreshDrawing(false);
  }

  _setHighlight(border) {
    const bm = this.nv.drawBitmap;
    if (this.border) for (const idx of this.border) bm[idx] = 0;
    this.border = border;
    if (border) for (const idx of border) bm[idx] = 1;
    this.nv.refreshDrawing(true);
  }

  resetView() {
    this._setPanZoom([0, 0, 0, 1]);
    const w = this.info.windows.liver;
    this.setWindow(w.level, w.width);
  }

  // ---------------------------------------------------------------- navigation
  vox() { return Array.from(this.nv.frac2vox(this.nv.scene.crosshairPos)).map(Math.round); }

  goToVox(vox) {
    this.nv.scene.crosshairPos = this.nv.vox2frac(vox);
    this.nv.createOnLocationChange();
    this.nv.drawScene();
    this._changed();
  }

  /* next (+1) or previous (-1) image in the scanner's order; "first"/"last" */
  stepImage(step) {
    const [i, j, k] = this.vox(), nz = this.dims.nz;
    let kk;
    if (step === "first" || step === "last") {
      const want = step === "first" ? 1 : nz;
      kk = this.info.axial_numbers.indexOf(want);
    } else kk = Math.max(0, Math.min(nz - 1, k + step * this.kStep));
    this.goToVox([i, j, kk]);
  }

  /* centre every plane on the point (RAS mm) at the given zoom, crosshair unchanged */
  centreOn(mm, zoom) {
    const m = this.nv.frac2mm([0.5, 0.5, 0.5]), z = Math.max(1, Math.min(MAX_ZOOM, zoom));
    this._setPanZoom([m[0] - z * mm[0], m[1] - z * mm[1], m[2] - z * mm[2], z]);
  }

  /* NiiVue draws the crosshair as a rod of a given width in mm: keep it ~1.5 screen pixels wide */
  _setPanZoom(panZoom) {
    const {nx, ny, nz} = this.dims, [sx, sy, sz] = this.info.spacing_ijk_mm;
    const fieldMM = Math.max(nx * sx, ny * sy, nz * sz), tilePx = Math.max(200, this.canvas.clientHeight / 2);
    this.nv.setCrosshairWidth(Math.max(0.1, 1.5 * fieldMM / (tilePx * panZoom[3])));
    this.nv.setPan2Dxyzmm(panZoom);
    this._changed();
  }

  async selectLesion(lesion) {
    this.state.selected = lesion;
    this.goToVox(lesion.centre_vox);
    const [sx, sy] = this.info.spacing_ijk_mm, {nx, ny} = this.dims;
    this.centreOn(this.nv.frac2mm(this.nv.scene.crosshairPos), Math.max(nx * sx, ny * sy) / lesion.fov_mm);
    let border = null;
    if (lesion.outline) {
      const resp = await fetch(`/api/studies/${this.info.study_id}/lesions/${lesion.id}/border`, {credentials: "same-origin"});
      if (!resp.ok) throw new Error(`lesion outline not available (${resp.status})`);
      border = new Uint32Array(await resp.arrayBuffer());
    }
    if (!this.painting) this._setHighlight(border);
    else this.border = border;
    this._drawAxes(lesion);
    this._changed();
  }

  clearSelection() {
    this.state.selected = null;
    if (!this.painting) this._setHighlight(null);
    this.nv.document.completedMeasurements = this.nv.document.completedMeasurements.filter((m) => !m.lesionAxis);
    this.nv.drawScene();
    this._changed();
  }

  /* long and short axes as NiiVue measurements on the lesion's largest axial slice */
  _drawAxes(lesion) {
    const doc = this.nv.document;
    doc.completedMeasurements = doc.completedMeasurements.filter((m) => !m.lesionAxis);
    if (!lesion.axes_mm) return;
    const k = lesion.centre_vox[2], slicePosition = (k + 0.5) / this.dims.nz;
    for (const ends of [lesion.axes_mm.long, lesion.axes_mm.short]) {
      if (!ends) continue;
      const [a, b] = ends, distance = Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
      doc.completedMeasurements.push({startMM: a, endMM: b, distance, sliceIndex: k, sliceType: SLICE_TYPE.AXIAL,
        slicePosition, lesionAxis: true});
    }
    this.nv.drawScene();
  }

  clearMeasurements() {
    const doc = this.nv.document;
    doc.completedMeasurements = doc.completedMeasurements.filter((m) => m.lesionAxis);
    this.nv.drawScene();
  }

  // ---------------------------------------------------------------- painting (corrections)
  startPainting() {
    const nv = this.nv;
    nv.setDrawColormap(PAINT_CMAP);
    nv.setDrawingEnabled(true);
    // the drawing starts as the current label map (same RAS layout as the label file)
    if (!nv.loadDrawing({hdr: this.seg.hdr, permRAS: this.seg.permRAS, img: this.labels})) {
      throw new Error("the label map does not fit the CT grid: cannot paint on it");
    }
    nv.setDrawOpacity(0.5);
    this.painting = true;
    this.setPen(2, false);
    this.setOverlay({overlay: false});
    this.setTool("paint");
  }

  setPen(value, filled) { this.nv.setPenValue(value, !!filled); this.pen = {value, filled: !!filled}; }
  setPenSize(px) { this.nv.opts.penSize = Math.max(1, Math.min(40, px | 0)); }
  undo() { if (this.painting) this.nv.drawUndo(); }
  paintedLabels() { return new Uint8Array(this.nv.drawBitmap); }

  stopPainting() {
    this.nv.setDrawingEnabled(false);
    this.nv.closeDrawing();
    this.painting = false;
    this._highlightLayer();  // back to the selected lesion's outline
    this.setOverlay({overlay: true});
    this.setTool("wl");
  }

  // ---------------------------------------------------------------- mouse
  _configureMouse() {
    const left = TOOL_MODES[this.state.tool];
    this.nv.setMouseEventConfig({leftButton: {primary: left}, rightButton: DRAG_MODE.none, centerButton: DRAG_MODE.pan});
  }

  _bindMouse() {
    const c = this.canvas;
    let drag = null;
    c.addEventListener("mousedown", (ev) => {
      const tool = ev.button === 2 ? "zoom" : ev.button === 0 ? this.state.tool : null;
      if (tool !== "wl" && tool !== "zoom") return;
      drag = {tool, x: ev.clientX, y: ev.clientY, level: this.state.level, width: this.state.width,
        zoom: this.nv.scene.pan2Dxyzmm[3], pan: Array.from(this.nv.scene.pan2Dxyzmm)};
    });
    window.addEventListener("mouseup", () => { drag = null; });
    window.addEventListener("mousemove", (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (drag.tool === "wl") {  // as OHIF: right = wider, down = higher level (darker)
        const level = drag.level + dy * WL_GAIN.level, width = drag.width + dx * WL_GAIN.width;
        this._later("window", () => this.setWindow(level, width));
      } else {  // drag up = zoom in, keeping the crosshair where it is on screen
        const z0 = drag.zoom, z = Math.max(0.5, Math.min(MAX_ZOOM, z0 * Math.exp(-dy / 150)));
        const c = this.nv.frac2mm(this.nv.scene.crosshairPos), p = drag.pan;
        this._setPanZoom([p[0] + (z0 - z) * c[0], p[1] + (z0 - z) * c[1], p[2] + (z0 - z) * c[2], z]);
        this._changed();
      }
    });
    c.addEventListener("mousemove", (ev) => {
      const r = c.getBoundingClientRect(), dpr = this.nv.uiData.dpr || 1;
      const frac = this.nv.canvasPos2frac([(ev.clientX - r.left) * dpr, (ev.clientY - r.top) * dpr]);
      this.state.hu = null;
      if (frac[0] >= 0) {
        const [i, j, k] = Array.from(this.nv.frac2vox(frac)).map(Math.round), {nx, ny, nz} = this.dims;
        if (i >= 0 && j >= 0 && k >= 0 && i < nx && j < ny && k < nz) {
          const raw = this.ct.img[i + nx * (j + ny * k)];
          this.state.hu = {value: raw * (this.ct.hdr.scl_slope || 1) + (this.ct.hdr.scl_inter || 0), vox: [i, j, k]};
        }
      }
      this._changed();
    });
    c.addEventListener("mouseleave", () => { this.state.hu = null; this._changed(); });
  }

  // ---------------------------------------------------------------- status
  status() {
    const [i, j, k] = this.vox(), {nx, ny, nz} = this.dims, info = this.info;
    return {
      number: info.axial_numbers[k], count: nz, z: info.axial_z_mm[k],
      coronal: ny - j, sagittal: nx - i, ny, nx,  // coronal counted from the front, sagittal from the right
      level: this.state.level, width: this.state.width, zoom: this.nv.scene.pan2Dxyzmm[3], hu: this.state.hu,
      tool: this.state.tool, painting: this.painting,
    };
  }

  _changed() { this.onChange(this.status()); }
}
