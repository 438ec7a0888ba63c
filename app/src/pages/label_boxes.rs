//! Detection and OCR labelling: one image at a time on a single `<canvas>`.
//!
//! Boxes are drawn with `CanvasRenderingContext2d` from Rust, never as DOM nodes, and
//! hit-tested in Rust ([`crate::geometry`]), so an image with thousands of boxes stays
//! smooth. The image and every box except the selected one are rendered into an
//! off-screen cache canvas when they change (zoom, pan, an edit); while a box is dragged a
//! frame is just the cache plus that one box. Frames are requested with
//! `requestAnimationFrame`, at most one per display frame; each records its duration in
//! `window.__frameTimes` (milliseconds) for the browser benchmark.
//!
//! Every change is saved at once through [`Saver`]. For OCR each box carries its
//! transcription, typed in the list beside the canvas.

use std::borrow::Borrow;
use std::collections::HashMap;

use leptos::html;
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};
use shared::InstanceType;
use shared::api::{
    Annotation, BoxAnnotation, Dataset, DraftBox, Image, ImageStatus, Instance, OCR_LABEL,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlImageElement};

use crate::api::{self, ImageFilter};
use crate::geometry::{Handle, Hit, Rect, View, hit_test};
use crate::help::{HelpTopic, help_topic, modified, release_focus, typing, use_help};
use crate::pages::common::Breadcrumb;
use crate::pages::label::{ImageSnapshot, SnapshotStatus};
use crate::pages::prelabel::{DraftMap, DraftPanel};
use crate::save::{SaveStatus, use_saver};
use crate::tags::{self, TagList};
use crate::{format, use_session};

/// Calm, distinct colours; label `i` of the dataset gets `PALETTE[i % 10]`.
const PALETTE: [&str; 10] = [
    "#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#a855f7", "#ec4899", "#14b8a6", "#eab308",
    "#f97316", "#6366f1",
];
/// How far (CSS px) from a handle a press still grabs it.
const HANDLE_REACH: f64 = 8.0;
const HANDLE_SIZE: f64 = 8.0;
/// A drag smaller than this (CSS px) is a click, not a new box.
const MIN_DRAW_PX: f64 = 4.0;
/// Captions are drawn on at most this many boxes (more would be unreadable anyway).
const CAPTION_LIMIT: usize = 200;
const HISTORY: usize = 100;
/// The label of a new detection box when the dataset has no labels yet.
const DEFAULT_LABEL: &str = "object";

#[derive(Clone, Debug, PartialEq)]
struct EditBox {
    uid: u64,
    label: String,
    text: Option<String>,
    rect: Rect,
}

impl Borrow<Rect> for EditBox {
    fn borrow(&self) -> &Rect {
        &self.rect
    }
}

/// A box a model version suggested (see [`crate::pages::prelabel`]), not yet accepted.
#[derive(Clone, Debug, PartialEq)]
struct Draft {
    label: String,
    text: Option<String>,
    rect: Rect,
    conf: f64,
}

#[derive(Clone, Copy, Debug)]
enum Drag {
    /// A new box from `(x0, y0)` to `(x1, y1)`, image pixels.
    Draw {
        x0: f64,
        y0: f64,
        x1: f64,
        y1: f64,
    },
    Move {
        index: usize,
        grab_x: f64,
        grab_y: f64,
        orig: Rect,
    },
    Resize {
        index: usize,
        handle: Handle,
        orig: Rect,
    },
    Pan {
        sx: f64,
        sy: f64,
        orig: View,
    },
}

/// Which drafts a decision takes.
#[derive(Clone, Copy)]
enum DraftPick {
    /// Accept the most confident one shown.
    Best,
    /// Accept this one (clicked).
    At(usize),
    /// Accept every one shown, drop the rest.
    AllShown,
    RejectBest,
    RejectAll,
}

/// What a finished drag did.
enum Outcome {
    Nothing,
    Added(u64),
    Changed,
}

struct Surfaces {
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    cache: HtmlCanvasElement,
    cache_ctx: CanvasRenderingContext2d,
}

/// The editor state. Lives in a `StoredValue` (not signals): pointer moves change it many
/// times per frame and must not re-render anything but the canvas.
#[derive(Default)]
struct Editor {
    ocr: bool,
    image_id: Option<i64>,
    width: f64,
    height: f64,
    boxes: Vec<EditBox>,
    selected: Option<usize>,
    view: View,
    fit_scale: f64,
    /// Follow the canvas size until the user zooms or pans.
    fitted: bool,
    drag: Option<Drag>,
    space: bool,
    /// The hand tool: every drag pans (for touch screens, which have no space bar).
    hand: bool,
    undo: Vec<Vec<EditBox>>,
    redo: Vec<Vec<EditBox>>,
    next_uid: u64,
    /// The boxes of the image shown before this one ("repeat previous").
    previous: Option<Vec<EditBox>>,
    /// The shown image's drafts, and the confidence from which they are shown.
    drafts: Vec<Draft>,
    draft_min: f64,
    /// The draft count last written to the canvas' `data-drafts`.
    drafts_shown: Option<usize>,
    surfaces: Option<Surfaces>,
    image: Option<HtmlImageElement>,
    image_ready: bool,
    css_w: f64,
    css_h: f64,
    dpr: f64,
    cache_dirty: bool,
    frame_pending: bool,
    cursor: &'static str,
    colours: HashMap<String, &'static str>,
    /// The view last written to the canvas' data attributes.
    shown: Option<(View, bool, Option<i64>)>,
}

fn now() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or(0.0)
}

/// Appends a frame duration to `window.__frameTimes`.
fn record_frame(ms: f64) {
    let w = window();
    let key = JsValue::from_str("__frameTimes");
    let array = match js_sys::Reflect::get(&w, &key)
        .ok()
        .and_then(|v| v.dyn_into::<js_sys::Array>().ok())
    {
        Some(a) => a,
        None => {
            let a = js_sys::Array::new();
            let _ = js_sys::Reflect::set(&w, &key, &a);
            a
        }
    };
    if array.length() >= 20_000 {
        array.set_length(0);
    }
    array.push(&JsValue::from_f64(ms));
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas
        .get_context("2d")
        .ok()
        .flatten()?
        .dyn_into::<CanvasRenderingContext2d>()
        .ok()
}

impl Editor {
    fn new_uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    fn edit_boxes(&mut self, annotation: &Annotation) -> Vec<EditBox> {
        annotation
            .boxes
            .iter()
            .map(|b| EditBox {
                uid: self.new_uid(),
                label: b.label.clone(),
                text: b.text.clone(),
                rect: Rect::new(b.xmin, b.ymin, b.xmax, b.ymax),
            })
            .collect()
    }

    /// Shows `image`; `false` if it is already shown.
    fn load(&mut self, image: &Image) -> bool {
        if self.image_id == Some(image.id) {
            return false;
        }
        if self.image_id.is_some() {
            self.previous = Some(std::mem::take(&mut self.boxes));
        }
        self.image_id = Some(image.id);
        self.drafts.clear();
        self.width = image.width as f64;
        self.height = image.height as f64;
        self.boxes = self.edit_boxes(&image.annotation);
        self.selected = None;
        self.drag = None;
        self.undo.clear();
        self.redo.clear();
        self.image_ready = false;
        self.refit();
        true
    }

    /// Takes the shown image's drafts (as stored: pixel boxes, hundredths of a pixel).
    fn set_drafts(&mut self, drafts: &[DraftBox]) {
        self.drafts = drafts
            .iter()
            .map(|d| Draft {
                label: d.rect.label.clone(),
                text: d.rect.text.clone(),
                rect: Rect::new(d.rect.xmin, d.rect.ymin, d.rect.xmax, d.rect.ymax),
                conf: d.conf,
            })
            .collect();
        self.cache_dirty = true;
    }

    /// The drafts as the page keeps them (what is left after decisions).
    fn draft_boxes(&self) -> Vec<DraftBox> {
        self.drafts
            .iter()
            .map(|d| DraftBox {
                rect: BoxAnnotation {
                    label: d.label.clone(),
                    xmin: d.rect.x0,
                    ymin: d.rect.y0,
                    xmax: d.rect.x1,
                    ymax: d.rect.y1,
                    text: d.text.clone(),
                },
                conf: d.conf,
            })
            .collect()
    }

    /// Indices of the drafts shown (at or above the threshold), in the model's order.
    fn shown_drafts(&self) -> Vec<usize> {
        (0..self.drafts.len())
            .filter(|&i| self.drafts[i].conf >= self.draft_min)
            .collect()
    }

    /// The most confident draft shown.
    fn best_draft(&self) -> Option<usize> {
        self.shown_drafts()
            .into_iter()
            .max_by(|&a, &b| self.drafts[a].conf.total_cmp(&self.drafts[b].conf))
    }

    /// The most confident draft shown under screen point `(sx, sy)`.
    fn draft_at(&self, sx: f64, sy: f64) -> Option<usize> {
        let (x, y) = self.view.to_image(sx, sy);
        self.shown_drafts()
            .into_iter()
            .filter(|&i| self.drafts[i].rect.contains(x, y))
            .max_by(|&a, &b| self.drafts[a].conf.total_cmp(&self.drafts[b].conf))
    }

    /// Makes drafts `which` boxes, exactly as suggested, in the order given (one undo step);
    /// the last becomes the selected box. Returns how many.
    fn accept_drafts(&mut self, which: &[usize]) -> usize {
        if which.is_empty() {
            return 0;
        }
        self.checkpoint();
        for &i in which {
            let d = self.drafts[i].clone();
            let uid = self.new_uid();
            self.boxes.push(EditBox {
                uid,
                label: d.label,
                text: d.text,
                rect: d.rect,
            });
        }
        self.reject_drafts(which);
        self.select(Some(self.boxes.len() - 1));
        which.len()
    }

    /// Drops drafts `which`. Returns how many.
    fn reject_drafts(&mut self, which: &[usize]) -> usize {
        let mut gone = which.to_vec();
        gone.sort_unstable();
        gone.dedup();
        for &i in gone.iter().rev() {
            self.drafts.remove(i);
        }
        self.cache_dirty = true;
        gone.len()
    }

    /// Shows `annotation` on the current image (after a refusal, or a rename of labels).
    fn replace(&mut self, annotation: &Annotation) {
        self.boxes = self.edit_boxes(annotation);
        self.selected = None;
        self.drag = None;
        self.cache_dirty = true;
    }

    fn annotation(&self) -> Annotation {
        Annotation {
            labels: Vec::new(),
            boxes: self
                .boxes
                .iter()
                .map(|b| {
                    let r = b.rect.rounded();
                    BoxAnnotation {
                        label: b.label.clone(),
                        xmin: r.x0,
                        ymin: r.y0,
                        xmax: r.x1,
                        ymax: r.y1,
                        text: b.text.clone(),
                    }
                })
                .collect(),
        }
    }

    fn refit(&mut self) {
        self.view = View::fit(self.width, self.height, self.css_w, self.css_h);
        self.fit_scale = self.view.scale;
        self.fitted = true;
        self.cache_dirty = true;
    }

    fn checkpoint(&mut self) {
        self.push_undo(self.boxes.clone());
    }

    fn push_undo(&mut self, state: Vec<EditBox>) {
        self.undo.push(state);
        if self.undo.len() > HISTORY {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    fn undo(&mut self) -> bool {
        let Some(prev) = self.undo.pop() else {
            return false;
        };
        self.redo.push(std::mem::replace(&mut self.boxes, prev));
        self.selected = None;
        self.cache_dirty = true;
        true
    }

    fn redo(&mut self) -> bool {
        let Some(next) = self.redo.pop() else {
            return false;
        };
        self.undo.push(std::mem::replace(&mut self.boxes, next));
        self.selected = None;
        self.cache_dirty = true;
        true
    }

    fn select(&mut self, index: Option<usize>) {
        if self.selected != index {
            self.selected = index;
            self.cache_dirty = true;
        }
    }

    fn delete_selected(&mut self) -> bool {
        let Some(i) = self.selected.filter(|&i| i < self.boxes.len()) else {
            return false;
        };
        self.checkpoint();
        self.boxes.remove(i);
        self.selected = None;
        self.cache_dirty = true;
        true
    }

    fn to_image_clamped(&self, sx: f64, sy: f64) -> (f64, f64) {
        let (x, y) = self.view.to_image(sx, sy);
        (x.clamp(0.0, self.width), y.clamp(0.0, self.height))
    }

    /// Adds the boxes of the previous image (or `fallback`), skipping exact duplicates.
    fn repeat(&mut self, fallback: &Annotation) -> usize {
        let source: Vec<(String, Option<String>, Rect)> = match &self.previous {
            Some(p) if !p.is_empty() => p
                .iter()
                .map(|b| (b.label.clone(), b.text.clone(), b.rect))
                .collect(),
            _ => fallback
                .boxes
                .iter()
                .map(|b| {
                    (
                        b.label.clone(),
                        b.text.clone(),
                        Rect::new(b.xmin, b.ymin, b.xmax, b.ymax),
                    )
                })
                .collect(),
        };
        let (w, h) = (self.width, self.height);
        let fresh: Vec<(String, Option<String>, Rect)> = source
            .into_iter()
            .map(|(l, t, r)| (l, t, r.clamped(w, h)))
            .filter(|(l, _, r)| {
                r.width() >= 1.0
                    && r.height() >= 1.0
                    && !self.boxes.iter().any(|b| b.label == *l && b.rect == *r)
            })
            .collect();
        if fresh.is_empty() {
            return 0;
        }
        self.checkpoint();
        let n = fresh.len();
        for (label, text, rect) in fresh {
            let uid = self.new_uid();
            self.boxes.push(EditBox {
                uid,
                label,
                text,
                rect,
            });
        }
        self.selected = None;
        self.cache_dirty = true;
        n
    }

    fn colour(&self, label: &str) -> &'static str {
        if let Some(c) = self.colours.get(label) {
            return c;
        }
        let hash = label
            .bytes()
            .fold(7_usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        PALETTE[hash % PALETTE.len()]
    }

    /// Matches the canvas' backing store to its CSS size and the device pixel ratio.
    fn measure(&mut self) {
        let Some(s) = &self.surfaces else { return };
        let css_w = f64::from(s.canvas.client_width().max(1));
        let css_h = f64::from(s.canvas.client_height().max(1));
        let dpr = window().device_pixel_ratio().max(1.0);
        if css_w == self.css_w && css_h == self.css_h && dpr == self.dpr {
            return;
        }
        let (pw, ph) = ((css_w * dpr).round() as u32, (css_h * dpr).round() as u32);
        s.canvas.set_width(pw);
        s.canvas.set_height(ph);
        s.cache.set_width(pw);
        s.cache.set_height(ph);
        self.css_w = css_w;
        self.css_h = css_h;
        self.dpr = dpr;
        if self.fitted {
            self.refit();
        } else {
            self.fit_scale = View::fit(self.width, self.height, css_w, css_h).scale;
        }
        self.cache_dirty = true;
    }

    fn render(&mut self) {
        let start = now();
        self.measure();
        let Some(s) = &self.surfaces else { return };
        let (ctx, canvas, cache, cache_ctx) = (
            s.ctx.clone(),
            s.canvas.clone(),
            s.cache.clone(),
            s.cache_ctx.clone(),
        );
        let dpr = self.dpr;
        let (pw, ph) = (f64::from(canvas.width()), f64::from(canvas.height()));
        if self.cache_dirty {
            self.cache_dirty = false;
            let c = &cache_ctx;
            let _ = c.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
            c.clear_rect(0.0, 0.0, pw, ph);
            let _ = c.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
            let v = self.view;
            match (&self.image, self.image_ready) {
                (Some(img), true) => {
                    c.set_image_smoothing_enabled(v.scale < 3.0);
                    let _ = c.draw_image_with_html_image_element_and_dw_and_dh(
                        img,
                        v.tx,
                        v.ty,
                        self.width * v.scale,
                        self.height * v.scale,
                    );
                }
                _ => {
                    c.set_fill_style_str("rgba(255,255,255,0.06)");
                    c.fill_rect(v.tx, v.ty, self.width * v.scale, self.height * v.scale);
                }
            }
            self.draw_boxes(c);
        }
        let _ = ctx.set_transform(1.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        ctx.clear_rect(0.0, 0.0, pw, ph);
        let _ = ctx.draw_image_with_html_canvas_element(&cache, 0.0, 0.0);
        let _ = ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
        if let Some(b) = self.selected.and_then(|i| self.boxes.get(i)) {
            let colour = self.colour(&b.label);
            let r = self.view.rect_to_screen(&b.rect);
            ctx.set_global_alpha(0.22);
            ctx.set_fill_style_str(colour);
            ctx.fill_rect(r.x0, r.y0, r.width(), r.height());
            ctx.set_global_alpha(1.0);
            ctx.set_line_width(2.5);
            ctx.set_stroke_style_str(colour);
            ctx.stroke_rect(r.x0, r.y0, r.width(), r.height());
            ctx.set_line_width(1.5);
            ctx.set_fill_style_str("#ffffff");
            ctx.begin_path();
            for h in Handle::ALL {
                let (hx, hy) = h.point(&r);
                ctx.rect(
                    hx - HANDLE_SIZE / 2.0,
                    hy - HANDLE_SIZE / 2.0,
                    HANDLE_SIZE,
                    HANDLE_SIZE,
                );
            }
            ctx.fill();
            ctx.stroke();
            self.caption(&ctx, self.name(&b.label, b.text.as_deref()), &r, colour);
        }
        if let Some(Drag::Draw { x0, y0, x1, y1 }) = self.drag {
            let r = self
                .view
                .rect_to_screen(&Rect::new(x0, y0, x1, y1).normalised());
            ctx.set_line_width(1.5);
            ctx.set_stroke_style_str("#ffffff");
            let dash = js_sys::Array::of2(&JsValue::from_f64(6.0), &JsValue::from_f64(4.0));
            let _ = ctx.set_line_dash(&dash);
            ctx.stroke_rect(r.x0, r.y0, r.width(), r.height());
            let _ = ctx.set_line_dash(&js_sys::Array::new());
        }
        let shown = (self.view, self.image_ready, self.image_id);
        if self.shown != Some(shown) {
            self.shown = Some(shown);
            let _ = canvas.set_attribute("data-scale", &self.view.scale.to_string());
            let _ = canvas.set_attribute("data-tx", &self.view.tx.to_string());
            let _ = canvas.set_attribute("data-ty", &self.view.ty.to_string());
            let _ = canvas.set_attribute(
                "data-ready",
                if self.image_ready { "true" } else { "false" },
            );
            let _ = canvas.set_attribute(
                "data-image-id",
                &self.image_id.map(|i| i.to_string()).unwrap_or_default(),
            );
        }
        let drafts = self.shown_drafts().len();
        if self.drafts_shown != Some(drafts) {
            self.drafts_shown = Some(drafts);
            let _ = canvas.set_attribute("data-drafts", &drafts.to_string());
        }
        record_frame(now() - start);
    }

    /// Every box but the selected one, one path per colour (a few canvas calls in all,
    /// whatever the number of boxes).
    fn draw_boxes(&self, c: &CanvasRenderingContext2d) {
        let mut by_colour: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, b) in self.boxes.iter().enumerate() {
            if Some(i) == self.selected {
                continue;
            }
            let colour = self.colour(&b.label);
            match by_colour.iter_mut().find(|(c, _)| *c == colour) {
                Some((_, list)) => list.push(i),
                None => by_colour.push((colour, vec![i])),
            }
        }
        c.set_line_width(1.5);
        for (colour, list) in &by_colour {
            c.begin_path();
            for &i in list {
                let r = self.view.rect_to_screen(&self.boxes[i].rect);
                c.rect(r.x0, r.y0, r.width(), r.height());
            }
            // A light fill helps to see a few boxes; with many it only costs time.
            if self.boxes.len() <= CAPTION_LIMIT {
                c.set_fill_style_str(colour);
                c.set_global_alpha(0.1);
                c.fill();
                c.set_global_alpha(1.0);
            }
            c.set_stroke_style_str(colour);
            c.stroke();
        }
        if self.boxes.len() <= CAPTION_LIMIT {
            for (i, b) in self.boxes.iter().enumerate() {
                if Some(i) != self.selected {
                    let r = self.view.rect_to_screen(&b.rect);
                    let name = self.name(&b.label, b.text.as_deref());
                    self.caption(c, name, &r, self.colour(&b.label));
                }
            }
        }
        self.draw_drafts(c);
    }

    /// Drafts: dashed, in their label's colour, captioned with the confidence.
    fn draw_drafts(&self, c: &CanvasRenderingContext2d) {
        let shown = self.shown_drafts();
        if shown.is_empty() {
            return;
        }
        let dash = js_sys::Array::of2(&JsValue::from_f64(5.0), &JsValue::from_f64(4.0));
        let _ = c.set_line_dash(&dash);
        c.set_line_width(2.0);
        for &i in &shown {
            let d = &self.drafts[i];
            let r = self.view.rect_to_screen(&d.rect);
            c.set_stroke_style_str(self.colour(&d.label));
            c.stroke_rect(r.x0, r.y0, r.width(), r.height());
        }
        let _ = c.set_line_dash(&js_sys::Array::new());
        if shown.len() <= CAPTION_LIMIT {
            c.set_global_alpha(0.75);
            for &i in &shown {
                let d = &self.drafts[i];
                let r = self.view.rect_to_screen(&d.rect);
                let what = self.name(&d.label, d.text.as_deref());
                let caption = format!("{what} {:.0}%", d.conf * 100.0);
                self.caption(c, &caption, &r, self.colour(&d.label));
            }
            c.set_global_alpha(1.0);
        }
    }

    /// What a box is called on the canvas: its label, or for OCR its text.
    fn name<'a>(&self, label: &'a str, text: Option<&'a str>) -> &'a str {
        if self.ocr { text.unwrap_or("") } else { label }
    }

    /// `text` on a small tab above the box.
    fn caption(&self, c: &CanvasRenderingContext2d, text: &str, r: &Rect, colour: &str) {
        if text.is_empty() {
            return;
        }
        let text: String = if text.chars().count() > 40 {
            text.chars().take(39).chain(['…']).collect()
        } else {
            text.to_owned()
        };
        c.set_font("12px system-ui, sans-serif");
        let w = c.measure_text(&text).map(|m| m.width()).unwrap_or(0.0) + 8.0;
        let y = if r.y0 >= 17.0 { r.y0 - 17.0 } else { r.y0 };
        c.set_fill_style_str(colour);
        c.fill_rect(r.x0, y, w, 17.0);
        c.set_fill_style_str("#ffffff");
        let _ = c.fill_text(&text, r.x0 + 4.0, y + 12.5);
    }
}

#[component]
pub fn BoxPage(dataset: Dataset, instance: Instance) -> impl IntoView {
    let ocr = instance.kind == InstanceType::Ocr;
    help_topic(if ocr {
        HelpTopic::Ocr
    } else {
        HelpTopic::Detection
    });
    let session = use_session();
    let help = use_help();
    let navigate = use_navigate();
    let query = use_query_map();
    let id = dataset.id;

    let status = Memo::new(move |_| {
        query.with(|q| {
            q.get("status")
                .and_then(|s| api::parse_status(&s))
                .unwrap_or(ImageStatus::All)
        })
    });
    let wanted =
        Memo::new(move |_| query.with(|q| q.get("image").and_then(|s| s.parse::<i64>().ok())));

    let nav = navigate.clone();
    let go = move |status: ImageStatus, image: Option<i64>| {
        let mut url = format!("/datasets/{id}/label?status={}", api::status_str(status));
        if let Some(i) = image {
            url.push_str(&format!("&image={i}"));
        }
        nav(
            &url,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    };

    let snapshot = ImageSnapshot::new(id, move || ImageFilter {
        status: status.get(),
        label: None,
    });
    let (items, reload) = (snapshot.items, snapshot.reload);

    // The image shown: the one in the address, else the first unlabelled, else the first.
    let index = Memo::new(move |_| {
        items.with(|v| {
            if v.is_empty() {
                return None;
            }
            wanted
                .get()
                .and_then(|w| v.iter().position(|i| i.id == w))
                .or_else(|| v.iter().position(|i| !i.labelled))
                .or(Some(0))
        })
    });
    let current = Memo::new(move |_| index.get().and_then(|i| items.with(|v| v.get(i).cloned())));
    // Put the image chosen by default into the address, so that labelling it (which takes
    // it out of "first unlabelled") does not move on, and a reload comes back to it.
    let pin = go.clone();
    Effect::new(move |_| {
        if wanted.get().is_none()
            && let Some(i) = index.get()
            && let Some(image) = items.with_untracked(|v| v.get(i).map(|i| i.id))
        {
            pin(status.get_untracked(), Some(image));
        }
    });
    let current_id = Memo::new(move |_| current.with(|c| c.as_ref().map(|i| i.id)));
    let next_id = Memo::new(move |_| {
        index
            .get()
            .and_then(|i| items.with(|v| v.get(i + 1).map(|i| i.id)))
    });
    let total = Memo::new(move |_| items.with(Vec::len));

    let labels: tags::Labels = LocalResource::new(move || async move {
        if ocr {
            return Ok(Vec::new());
        }
        session.checked(api::list_labels(id)).await
    });
    let current_label = RwSignal::new(None::<String>);

    let ed = StoredValue::new_local(Editor {
        ocr,
        ..Editor::default()
    });
    // Bumped when boxes are added, removed, relabelled or replaced (not moved): the side
    // panel follows it.
    let version = RwSignal::new(0_u64);
    let selected_uid = RwSignal::new(None::<u64>);
    let zoom = RwSignal::new(1.0_f64);
    let hand = RwSignal::new(false);
    let notice = RwSignal::new(None::<String>);
    // Notices float over the canvas for a few seconds.
    Effect::new(move |_| {
        if let Some(shown) = notice.get() {
            set_timeout(
                move || {
                    if notice.with_untracked(|n| n.as_ref() == Some(&shown)) {
                        notice.set(None);
                    }
                },
                std::time::Duration::from_secs(4),
            );
        }
    });

    let request_frame = move || {
        let go = ed
            .try_update_value(|e| {
                if e.frame_pending {
                    false
                } else {
                    e.frame_pending = true;
                    true
                }
            })
            .unwrap_or(false);
        if go {
            request_animation_frame(move || {
                ed.try_update_value(|e| {
                    e.frame_pending = false;
                    e.render();
                });
            });
        }
    };
    let sync = move || {
        let (uid, scale, fit) = ed
            .try_with_value(|e| {
                (
                    e.selected.and_then(|i| e.boxes.get(i)).map(|b| b.uid),
                    e.view.scale,
                    e.fit_scale,
                )
            })
            .unwrap_or((None, 1.0, 1.0));
        if selected_uid.get_untracked() != uid {
            selected_uid.set(uid);
        }
        let z = if fit > 0.0 { scale / fit } else { 1.0 };
        if (zoom.get_untracked() - z).abs() > 1e-6 {
            zoom.set(z);
        }
    };

    let saver = use_saver();
    saver.on_refused(Callback::new(
        move |(image, confirmed): (i64, Annotation)| {
            items.update(|v| {
                if let Some(img) = v.iter_mut().find(|i| i.id == image) {
                    img.labelled = !confirmed.is_empty();
                    img.annotation = confirmed.clone();
                }
            });
            let shown = ed.try_update_value(|e| {
                let shown = e.image_id == Some(image);
                if shown {
                    e.replace(&confirmed);
                }
                shown
            });
            if shown == Some(true) {
                version.update(|n| *n += 1);
                sync();
                request_frame();
            }
        },
    ));
    Effect::new(move |prev: Option<u64>| {
        let saved = saver.saved.get();
        let idle = saver.pending.get() == 0;
        if idle && prev.is_some_and(|p| p != saved) && !ocr {
            labels.refetch();
        }
        if idle { saved } else { prev.unwrap_or(saved) }
    });

    // Sends the editor's boxes for the current image.
    let save_current = move |bump: bool| {
        let Some((image, annotation)) = ed
            .try_with_value(|e| e.image_id.map(|i| (i, e.annotation())))
            .flatten()
        else {
            return;
        };
        let mut before = Annotation::default();
        let mut revision = 0;
        items.update(|v| {
            if let Some(img) = v.iter_mut().find(|i| i.id == image) {
                img.labelled = !annotation.is_empty();
                revision = img.revision;
                before = std::mem::replace(&mut img.annotation, annotation.clone());
            }
        });
        saver.save(image, revision, annotation, &before);
        if bump {
            version.update(|n| *n += 1);
        }
        sync();
        request_frame();
    };

    // Drafts from a model version: kept per image by the panel, shown by the editor.
    let drafts_map = RwSignal::new(DraftMap::new());
    let draft_min = RwSignal::new(0.0_f64);
    Effect::new(move |_| {
        let min = draft_min.get();
        ed.update_value(|e| {
            e.draft_min = min;
            e.cache_dirty = true;
        });
        request_frame();
    });
    Effect::new(move |_| {
        drafts_map.with(|m| {
            ed.update_value(|e| {
                if let Some(id) = e.image_id {
                    e.set_drafts(m.get(&id).map(Vec::as_slice).unwrap_or(&[]));
                }
            });
        });
        request_frame();
    });
    // A decision on the shown image's drafts: accepted ones are saved as boxes drawn by
    // hand; when none is left, the server drops the image's drafts.
    let take_drafts = move |pick: DraftPick| {
        let (accepted, rejected) = ed
            .try_update_value(|e| {
                let all: Vec<usize> = (0..e.drafts.len()).collect();
                match pick {
                    DraftPick::Best => e
                        .best_draft()
                        .map_or((0, 0), |i| (e.accept_drafts(&[i]), 0)),
                    DraftPick::At(i) => (e.accept_drafts(&[i]), 0),
                    DraftPick::AllShown => {
                        let shown = e.shown_drafts();
                        let accepted = e.accept_drafts(&shown);
                        let rest: Vec<usize> = (0..e.drafts.len()).collect();
                        (accepted, e.reject_drafts(&rest))
                    }
                    DraftPick::RejectBest => e
                        .best_draft()
                        .map_or((0, 0), |i| (0, e.reject_drafts(&[i]))),
                    DraftPick::RejectAll => (0, e.reject_drafts(&all)),
                }
            })
            .unwrap_or((0, 0));
        if accepted + rejected == 0 {
            notice.set(Some("No drafts shown on this image.".into()));
            return;
        }
        let Some((image, left)) = ed
            .try_with_value(|e| e.image_id.map(|i| (i, e.draft_boxes())))
            .flatten()
        else {
            return;
        };
        let had = drafts_map.with_untracked(|m| m.contains_key(&image));
        drafts_map.update(|m| {
            if left.is_empty() {
                m.remove(&image);
            } else {
                m.insert(image, left.clone());
            }
        });
        if had && left.is_empty() {
            leptos::task::spawn_local(async move {
                let _ = session.checked(api::drop_prelabel(image)).await;
            });
        }
        if accepted > 0 {
            save_current(true);
        } else {
            sync();
            request_frame();
        }
    };

    // Show the current image in the editor.
    Effect::new(move |_| {
        let Some(image) = current.get() else { return };
        let changed = ed
            .try_update_value(|e| {
                let changed = e.load(&image);
                if changed && let Some(d) = drafts_map.with_untracked(|m| m.get(&image.id).cloned())
                {
                    e.set_drafts(&d);
                }
                changed
            })
            .unwrap_or(false);
        if changed {
            notice.set(None);
            version.update(|n| *n += 1);
            sync();
            request_frame();
        }
    });
    // Label colours follow the dataset's label order.
    Effect::new(move |_| {
        let names = tags::names(&labels);
        if current_label.with_untracked(|c| c.as_ref().is_none_or(|c| !names.contains(c))) {
            current_label.set(names.first().cloned());
        }
        ed.update_value(|e| {
            e.colours = names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), PALETTE[i % PALETTE.len()]))
                .collect();
            e.cache_dirty = true;
        });
        request_frame();
    });

    let canvas_ref = NodeRef::<html::Canvas>::new();
    let img_ref = NodeRef::<html::Img>::new();
    Effect::new(move |_| {
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        let canvas: HtmlCanvasElement = canvas;
        let Some(ctx) = context(&canvas) else { return };
        let Some(cache) = document()
            .create_element("canvas")
            .ok()
            .and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok())
        else {
            return;
        };
        let Some(cache_ctx) = context(&cache) else {
            return;
        };
        ed.update_value(|e| {
            e.surfaces = Some(Surfaces {
                canvas,
                ctx,
                cache,
                cache_ctx,
            });
            e.css_w = 0.0;
            e.cache_dirty = true;
        });
        request_frame();
    });
    let on_image_load = move |_| {
        let Some(img) = img_ref.get_untracked() else {
            return;
        };
        let img: HtmlImageElement = img;
        let expected = current_id.get_untracked().map(api::content_url);
        if !img.complete()
            || img.natural_width() == 0
            || expected.is_none_or(|u| !img.src().ends_with(&u))
        {
            return;
        }
        ed.update_value(|e| {
            e.image = Some(img);
            e.image_ready = true;
            e.cache_dirty = true;
        });
        request_frame();
    };
    let resize = window_event_listener(leptos::ev::resize, move |_| request_frame());
    on_cleanup(move || resize.remove());

    let new_box_label = move || {
        if ocr {
            OCR_LABEL.to_owned()
        } else {
            current_label
                .get_untracked()
                .or_else(|| tags::names_untracked(&labels).into_iter().next())
                .unwrap_or_else(|| DEFAULT_LABEL.to_owned())
        }
    };

    // Pointer input on the canvas.
    let local = move |ev: &web_sys::PointerEvent| -> (f64, f64) {
        canvas_ref
            .get_untracked()
            .map(|c| {
                let r = c.get_bounding_client_rect();
                (
                    f64::from(ev.client_x()) - r.left(),
                    f64::from(ev.client_y()) - r.top(),
                )
            })
            .unwrap_or_default()
    };
    let set_cursor = move |cursor: &'static str| {
        let changed = ed
            .try_update_value(|e| std::mem::replace(&mut e.cursor, cursor) != cursor)
            .unwrap_or(false);
        if changed && let Some(c) = canvas_ref.get_untracked() {
            let _ = web_sys::HtmlElement::style(&c).set_property("cursor", cursor);
        }
    };
    let pointer_down = move |ev: web_sys::PointerEvent| {
        let (sx, sy) = local(&ev);
        let Some(canvas) = canvas_ref.get_untracked() else {
            return;
        };
        focus_quietly(&canvas);
        let button = ev.button();
        if button != 0 && button != 1 {
            return;
        }
        ev.prevent_default();
        let shift = ev.shift_key();
        // A click on a draft (not on a box) accepts it.
        let draft = ed
            .try_with_value(|e| {
                if shift || button != 0 || e.space || e.hand || e.image_id.is_none() {
                    return None;
                }
                match hit_test(&e.boxes, e.selected, &e.view, sx, sy, HANDLE_REACH) {
                    Hit::Nothing => e.draft_at(sx, sy),
                    _ => None,
                }
            })
            .flatten();
        if let Some(i) = draft {
            take_drafts(DraftPick::At(i));
            return;
        }
        let _ = canvas.set_pointer_capture(ev.pointer_id());
        let panning = ed
            .try_update_value(|e| {
                e.image_id?;
                if button == 1 || e.space || e.hand {
                    e.drag = Some(Drag::Pan {
                        sx,
                        sy,
                        orig: e.view,
                    });
                    return Some(true);
                }
                let hit = if shift {
                    Hit::Nothing
                } else {
                    hit_test(&e.boxes, e.selected, &e.view, sx, sy, HANDLE_REACH)
                };
                match hit {
                    Hit::Handle(index, handle) => {
                        e.drag = Some(Drag::Resize {
                            index,
                            handle,
                            orig: e.boxes[index].rect,
                        });
                    }
                    Hit::Inside(index) => {
                        e.select(Some(index));
                        let (x, y) = e.view.to_image(sx, sy);
                        e.drag = Some(Drag::Move {
                            index,
                            grab_x: x,
                            grab_y: y,
                            orig: e.boxes[index].rect,
                        });
                    }
                    Hit::Nothing => {
                        e.select(None);
                        let (x, y) = e.to_image_clamped(sx, sy);
                        e.drag = Some(Drag::Draw {
                            x0: x,
                            y0: y,
                            x1: x,
                            y1: y,
                        });
                    }
                }
                Some(false)
            })
            .flatten();
        if panning == Some(true) {
            set_cursor("grabbing");
        }
        sync();
        request_frame();
    };
    let pointer_move = move |ev: web_sys::PointerEvent| {
        let (sx, sy) = local(&ev);
        let hover = ed
            .try_update_value(|e| {
                let (w, h) = (e.width, e.height);
                match e.drag {
                    Some(Drag::Pan {
                        sx: x0,
                        sy: y0,
                        orig,
                    }) => {
                        e.view = orig.panned(sx - x0, sy - y0);
                        e.fitted = false;
                        e.cache_dirty = true;
                        None
                    }
                    Some(Drag::Draw { x0, y0, .. }) => {
                        let (x1, y1) = e.to_image_clamped(sx, sy);
                        e.drag = Some(Drag::Draw { x0, y0, x1, y1 });
                        None
                    }
                    Some(Drag::Move {
                        index,
                        grab_x,
                        grab_y,
                        orig,
                    }) => {
                        let (x, y) = e.view.to_image(sx, sy);
                        if let Some(b) = e.boxes.get_mut(index) {
                            b.rect = orig.moved_within(x - grab_x, y - grab_y, w, h);
                        }
                        None
                    }
                    Some(Drag::Resize {
                        index,
                        handle,
                        orig,
                    }) => {
                        let (x, y) = e.to_image_clamped(sx, sy);
                        if let Some(b) = e.boxes.get_mut(index) {
                            b.rect = handle.drag(&orig, x, y);
                        }
                        None
                    }
                    None => Some(if e.space || e.hand {
                        "grab"
                    } else {
                        match hit_test(&e.boxes, e.selected, &e.view, sx, sy, HANDLE_REACH) {
                            Hit::Handle(_, h) => h.cursor(),
                            Hit::Inside(_) => "move",
                            Hit::Nothing => "crosshair",
                        }
                    }),
                }
            })
            .flatten();
        match hover {
            Some(cursor) => set_cursor(cursor),
            None => request_frame(),
        }
    };
    let pointer_up = move |ev: web_sys::PointerEvent| {
        if let Some(c) = canvas_ref.get_untracked() {
            let _ = c.release_pointer_capture(ev.pointer_id());
        }
        let label = new_box_label();
        let outcome = ed
            .try_update_value(|e| match e.drag.take() {
                Some(Drag::Draw { x0, y0, x1, y1 }) => {
                    let r = Rect::new(x0, y0, x1, y1)
                        .normalised()
                        .clamped(e.width, e.height);
                    let s = e.view.rect_to_screen(&r);
                    if s.width() >= MIN_DRAW_PX
                        && s.height() >= MIN_DRAW_PX
                        && r.width() >= 1.0
                        && r.height() >= 1.0
                    {
                        e.checkpoint();
                        let uid = e.new_uid();
                        let text = ocr.then(String::new);
                        e.boxes.push(EditBox {
                            uid,
                            label,
                            text,
                            rect: r.rounded(),
                        });
                        e.select(Some(e.boxes.len() - 1));
                        e.cache_dirty = true;
                        Outcome::Added(uid)
                    } else {
                        Outcome::Nothing
                    }
                }
                Some(Drag::Move { index, orig, .. } | Drag::Resize { index, orig, .. }) => {
                    match e.boxes.get(index).map(|b| b.rect) {
                        Some(r) if r != orig && r.width() >= 1.0 && r.height() >= 1.0 => {
                            let mut before = e.boxes.clone();
                            before[index].rect = orig;
                            e.push_undo(before);
                            e.boxes[index].rect = r.rounded();
                            Outcome::Changed
                        }
                        Some(_) => {
                            e.boxes[index].rect = orig;
                            Outcome::Nothing
                        }
                        None => Outcome::Nothing,
                    }
                }
                Some(Drag::Pan { .. }) | None => Outcome::Nothing,
            })
            .unwrap_or(Outcome::Nothing);
        set_cursor(if ed.with_value(|e| e.space || e.hand) {
            "grab"
        } else {
            "crosshair"
        });
        match outcome {
            Outcome::Added(uid) => {
                save_current(true);
                if ocr {
                    request_animation_frame(move || focus_text(uid));
                }
            }
            Outcome::Changed => save_current(false),
            Outcome::Nothing => {
                sync();
                request_frame();
            }
        }
    };
    let wheel = move |ev: web_sys::WheelEvent| {
        ev.prevent_default();
        let Some(c) = canvas_ref.get_untracked() else {
            return;
        };
        let r = c.get_bounding_client_rect();
        let (sx, sy) = (
            f64::from(ev.client_x()) - r.left(),
            f64::from(ev.client_y()) - r.top(),
        );
        let unit = match ev.delta_mode() {
            1 => 16.0,
            2 => 400.0,
            _ => 1.0,
        };
        let factor = (-ev.delta_y() * unit * 0.0015).exp().clamp(0.5, 2.0);
        zoom_by(ed, factor, Some((sx, sy)));
        sync();
        request_frame();
    };

    // Actions shared by keys and buttons.
    let nav_image = {
        let go = go.clone();
        move |delta: isize| {
            let Some(i) = index.get_untracked() else {
                return;
            };
            let target = i as isize + delta;
            let len = total.get_untracked() as isize;
            if target < 0 {
                notice.set(Some("This is the first image.".into()));
            } else if target >= len {
                notice.set(Some("This is the last image of this filter.".into()));
            } else if let Some(img) = items.with_untracked(|v| v.get(target as usize).map(|i| i.id))
            {
                go(status.get_untracked(), Some(img));
            }
        }
    };
    let repeat = move || {
        let fallback = index
            .get_untracked()
            .filter(|&i| i > 0)
            .and_then(|i| items.with_untracked(|v| v.get(i - 1).map(|img| img.annotation.clone())))
            .unwrap_or_default();
        let added = ed.try_update_value(|e| e.repeat(&fallback)).unwrap_or(0);
        if added > 0 {
            notice.set(Some(format!(
                "Repeated {} from the previous image.",
                format::count(added as i64, "box", "boxes")
            )));
            save_current(true);
        } else {
            notice.set(Some(
                "Nothing to repeat: the previous image has no boxes that are not here already."
                    .into(),
            ));
        }
    };
    let delete_selected = move || {
        if ed
            .try_update_value(Editor::delete_selected)
            .unwrap_or(false)
        {
            save_current(true);
        }
    };
    let relabel = move |label: String| {
        current_label.set(Some(label.clone()));
        let changed = ed
            .try_update_value(|e| {
                let i = e.selected.filter(|&i| i < e.boxes.len())?;
                if e.boxes[i].label == label {
                    return None;
                }
                e.checkpoint();
                e.boxes[i].label = label;
                e.cache_dirty = true;
                Some(())
            })
            .flatten()
            .is_some();
        if changed {
            save_current(true);
        } else {
            request_frame();
        }
    };
    let fit = move || {
        ed.update_value(Editor::refit);
        sync();
        request_frame();
    };
    let undo = move |redo: bool| {
        let changed = ed
            .try_update_value(|e| if redo { e.redo() } else { e.undo() })
            .unwrap_or(false);
        if changed {
            save_current(true);
        }
    };
    let toggle_hand = move || {
        let on = !hand.get_untracked();
        hand.set(on);
        ed.update_value(|e| e.hand = on);
        set_cursor(if on { "grab" } else { "crosshair" });
    };
    let cycle = move |back: bool| {
        ed.update_value(|e| {
            let n = e.boxes.len();
            if n == 0 {
                return;
            }
            let next = match (e.selected, back) {
                (None, false) => 0,
                (None, true) => n - 1,
                (Some(i), false) => (i + 1) % n,
                (Some(i), true) => (i + n - 1) % n,
            };
            e.select(Some(next));
        });
        sync();
        request_frame();
    };

    let keys = {
        let nav_image = nav_image.clone();
        window_event_listener(leptos::ev::keydown, move |ev| {
            if help.open.get_untracked() || typing(&ev) {
                return;
            }
            let key = ev.key();
            if (ev.ctrl_key() || ev.meta_key()) && !ev.alt_key() {
                match key.as_str() {
                    "z" | "Z" => undo(ev.shift_key()),
                    "y" | "Y" => undo(true),
                    _ => return,
                }
                ev.prevent_default();
                return;
            }
            if modified(&ev) {
                return;
            }
            match key.as_str() {
                " " => {
                    ed.update_value(|e| e.space = true);
                    set_cursor("grab");
                }
                "Delete" | "Backspace" => delete_selected(),
                "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" if !ocr => {
                    let n = key.parse::<usize>().unwrap_or(1) - 1;
                    match tags::names_untracked(&labels).get(n) {
                        Some(name) => relabel(name.clone()),
                        None => notice.set(Some(format!(
                            "There is no label {}: add labels on the right.",
                            n + 1
                        ))),
                    }
                }
                "r" | "R" => repeat(),
                "Enter" => take_drafts(DraftPick::AllShown),
                "e" | "E" => take_drafts(DraftPick::Best),
                "q" | "Q" => take_drafts(DraftPick::RejectBest),
                "x" | "X" => take_drafts(DraftPick::RejectAll),
                "h" | "H" => toggle_hand(),
                "d" | "D" | "ArrowRight" => nav_image(1),
                "a" | "A" | "ArrowLeft" => nav_image(-1),
                "f" | "F" | "0" => fit(),
                "+" | "=" => {
                    zoom_by(ed, 1.25, None);
                    sync();
                    request_frame();
                }
                "-" | "_" => {
                    zoom_by(ed, 0.8, None);
                    sync();
                    request_frame();
                }
                "Tab" => {
                    let on_canvas = document().active_element().is_none_or(|a| {
                        a.tag_name().eq_ignore_ascii_case("canvas")
                            || a.tag_name().eq_ignore_ascii_case("body")
                    });
                    if !on_canvas {
                        return;
                    }
                    cycle(ev.shift_key());
                }
                "Escape" => {
                    ed.update_value(|e| {
                        match e.drag.take() {
                            Some(
                                Drag::Move { index, orig, .. } | Drag::Resize { index, orig, .. },
                            ) => {
                                if let Some(b) = e.boxes.get_mut(index) {
                                    b.rect = orig;
                                }
                            }
                            Some(_) => {}
                            None => e.select(None),
                        }
                        e.cache_dirty = true;
                    });
                    sync();
                    request_frame();
                }
                _ => return,
            }
            ev.prevent_default();
        })
    };
    let keys_up = window_event_listener(leptos::ev::keyup, move |ev| {
        if ev.key() == " " {
            let was = ed
                .try_update_value(|e| std::mem::replace(&mut e.space, false))
                .unwrap_or(false);
            if was {
                set_cursor(if hand.get_untracked() {
                    "grab"
                } else {
                    "crosshair"
                });
            }
        }
    });
    on_cleanup(move || {
        keys.remove();
        keys_up.remove();
    });

    let finishing = RwSignal::new(false);
    let nav = navigate.clone();
    Effect::new(move |_| {
        // Once everything is saved (a refusal stays on the banner, which follows the user).
        if finishing.get() && saver.pending.get() == 0 {
            nav(&format!("/datasets/{id}"), Default::default());
        }
    });

    let go_filter = go.clone();
    let on_filter = move |ev: leptos::ev::Event| {
        release_focus(&ev);
        go_filter(
            api::parse_status(&event_target_value(&ev)).unwrap_or(ImageStatus::All),
            None,
        );
    };
    let (prev_image, next_image) = (nav_image.clone(), nav_image.clone());

    let side = if ocr {
        view! {
            <OcrList
                ed=ed
                version=version
                selected_uid=selected_uid
                on_select=Callback::new(move |uid: u64| {
                    ed.update_value(|e| {
                        let i = e.boxes.iter().position(|b| b.uid == uid);
                        e.select(i);
                    });
                    sync();
                    request_frame();
                })
                on_text=Callback::new(move |(uid, text): (u64, String)| {
                    ed.update_value(|e| {
                        if let Some(b) = e.boxes.iter_mut().find(|b| b.uid == uid) {
                            b.text = Some(text);
                            e.cache_dirty = true;
                        }
                    });
                    save_current(false);
                })
                on_delete=Callback::new(move |uid: u64| {
                    ed.update_value(|e| {
                        let i = e.boxes.iter().position(|b| b.uid == uid);
                        e.select(i);
                    });
                    delete_selected();
                })
                canvas_ref=canvas_ref
            />
            <DraftPanel dataset=id instance=instance.id drafts=drafts_map min_conf=draft_min/>
        }
        .into_any()
    } else {
        view! {
            <TagList
                dataset=id
                labels=labels
                active=current_label
                on_pick=Callback::new(relabel)
                on_changed=Callback::new(move |()| {
                    // Labels changed on the server: show its boxes again.
                    ed.update_value(|e| e.image_id = None);
                    reload.update(|n| *n += 1);
                })
                ascii=false
                title="Labels"
                hint="Click a label or press its number: new boxes get it, and so does the selected box."
            />
            <BoxInfo ed=ed version=version selected_uid=selected_uid labels=labels on_label=Callback::new(relabel) on_delete=Callback::new(move |()| delete_selected())/>
            <DraftPanel dataset=id instance=instance.id drafts=drafts_map min_conf=draft_min/>
        }
        .into_any()
    };

    view! {
        <Breadcrumb
            instance_id=instance.id
            instance_name=instance.name.clone()
            dataset=(id, dataset.name.clone())
        />
        <div class="label-head">
            <h1>
                {if ocr { "Transcribe " } else { "Draw boxes " }}
                <span class="muted">{dataset.name.clone()}</span>
            </h1>
            <div class="head-actions">
                <SaveStatus/>
                <button
                    class="button primary"
                    data-testid="finish"
                    disabled=move || finishing.get()
                    on:click=move |_| finishing.set(true)
                >
                    {move || if finishing.get() { "Saving…" } else { "Finish labelling" }}
                </button>
            </div>
        </div>
        <div class="toolbar">
            <div class="pager">
                <button
                    class="button subtle small"
                    data-testid="prev-image"
                    title="Previous image (A, ←)"
                    disabled=move || index.get().is_none_or(|i| i == 0)
                    on:click=move |_| prev_image(-1)
                >
                    "‹"
                </button>
                <span data-testid="image-position">
                    {move || match index.get() {
                        Some(i) => format!("{} / {}", i + 1, total.get()),
                        None => "0 / 0".to_owned(),
                    }}
                </span>
                <button
                    class="button subtle small"
                    data-testid="next-image"
                    title="Next image (D, →)"
                    disabled={move || index.get().is_none_or(|i| i + 1 >= total.get())}
                    on:click=move |_| next_image(1)
                >
                    "›"
                </button>
            </div>
            <span class="muted small image-name" data-testid="image-name">
                {move || current.with(|c| c.as_ref().map(|i| format!("{} · {}×{}", i.path, i.width, i.height)).unwrap_or_default())}
            </span>
            <label class="inline-field">
                <span>"Show"</span>
                <select data-testid="filter" on:change=on_filter prop:value=move || api::status_str(status.get())>
                    <option value="all">"All images"</option>
                    <option value="unlabelled">"Unlabelled"</option>
                    <option value="labelled">"Labelled"</option>
                </select>
            </label>
            <div class="zoom">
                <button class="button subtle small" title="Zoom out (−)" aria-label="Zoom out" on:click=move |_| { zoom_by(ed, 0.8, None); sync(); request_frame(); }>"−"</button>
                <button class="button subtle small" data-testid="fit" title="Fit (F)" on:click=move |_| fit()>
                    {move || format!("{:.0}%", zoom.get() * 100.0)}
                </button>
                <button class="button subtle small" title="Zoom in (+)" aria-label="Zoom in" on:click=move |_| { zoom_by(ed, 1.25, None); sync(); request_frame(); }>"+"</button>
            </div>
            <button
                class="button subtle small"
                class:pressed=move || hand.get()
                data-testid="hand"
                title="Hand tool: drag to pan (H)"
                aria-pressed=move || if hand.get() { "true" } else { "false" }
                on:click=move |_| toggle_hand()
            >
                "Pan"
            </button>
            <button class="button subtle small" data-testid="repeat" title="Repeat the previous image's boxes (R)" on:click=move |_| repeat()>
                "Repeat previous"
            </button>
            <button class="button subtle small" data-testid="undo" title="Undo (Ctrl+Z)" on:click=move |_| undo(false)>
                "Undo"
            </button>
        </div>
        <SnapshotStatus snapshot=snapshot/>
        <div class="box-layout" class:hidden=move || snapshot.loaded_empty()>
            <div class="canvas-wrap">
                <Show when=move || notice.with(Option::is_some)>
                    <p class="notice toast" role="status" data-testid="label-notice">
                        <span>{move || notice.get().unwrap_or_default()}</span>
                        <button class="icon-button" aria-label="Dismiss" on:click=move |_| notice.set(None)>
                            "×"
                        </button>
                    </p>
                </Show>
                <canvas
                    node_ref=canvas_ref
                    class="board"
                    tabindex="0"
                    data-testid="board"
                    aria-label=if ocr { "Image with text boxes" } else { "Image with boxes" }
                    on:pointerdown=pointer_down
                    on:pointermove=pointer_move
                    on:pointerup=pointer_up
                    on:pointercancel=pointer_up
                    on:wheel=wheel
                    on:contextmenu=|ev| ev.prevent_default()
                ></canvas>
                <img
                    node_ref=img_ref
                    class="offscreen"
                    alt=""
                    aria-hidden="true"
                    src=move || current_id.get().map(api::content_url)
                    on:load=on_image_load
                />
                <img
                    class="offscreen"
                    alt=""
                    aria-hidden="true"
                    src=move || next_id.get().map(api::content_url)
                />
            </div>
            <aside class="side">{side}</aside>
        </div>
    }
}

/// Zooms about `at` (CSS px on the canvas), or about the canvas centre.
fn zoom_by(ed: StoredValue<Editor, LocalStorage>, factor: f64, at: Option<(f64, f64)>) {
    ed.update_value(|e| {
        let (sx, sy) = at.unwrap_or((e.css_w / 2.0, e.css_h / 2.0));
        e.view = e.view.zoomed_at(factor, sx, sy, e.fit_scale);
        e.fitted = false;
        e.cache_dirty = true;
    });
}

/// Focuses without scrolling: a press on the canvas must not move it under the pointer.
fn focus_quietly(el: &web_sys::HtmlElement) {
    let options = web_sys::FocusOptions::new();
    options.set_prevent_scroll(true);
    let _ = el.focus_with_options(&options);
}

fn focus_text(uid: u64) {
    if let Some(el) = document().get_element_by_id(&format!("ocr-text-{uid}"))
        && let Ok(input) = el.dyn_into::<web_sys::HtmlInputElement>()
    {
        let _ = input.focus();
    }
}

/// Detection: the boxes on this image, and the selected box's label.
#[component]
fn BoxInfo(
    ed: StoredValue<Editor, LocalStorage>,
    version: RwSignal<u64>,
    selected_uid: RwSignal<Option<u64>>,
    labels: tags::Labels,
    on_label: Callback<String>,
    on_delete: Callback<()>,
) -> impl IntoView {
    let counts = move || {
        version.track();
        ed.try_with_value(|e| {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for b in &e.boxes {
                match counts.iter_mut().find(|(l, _)| *l == b.label) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((b.label.clone(), 1)),
                }
            }
            (e.boxes.len(), counts)
        })
        .unwrap_or_default()
    };
    let selected = move || {
        version.track();
        let uid = selected_uid.get()?;
        ed.try_with_value(|e| {
            e.boxes
                .iter()
                .find(|b| b.uid == uid)
                .map(|b| (b.label.clone(), b.rect))
        })
        .flatten()
    };
    view! {
        <div class="box-info">
            <h2 class="panel-title">"This image"</h2>
            <p data-testid="box-count">
                {move || format::count(counts().0 as i64, "box", "boxes")}
            </p>
            <ul class="box-counts">
                {move || {
                    counts()
                        .1
                        .into_iter()
                        .map(|(l, n)| view! { <li><span>{l}</span><span class="muted">{n}</span></li> })
                        .collect_view()
                }}
            </ul>
            {move || {
                selected()
                    .map(|(label, rect)| {
                        let names = tags::names(&labels);
                        let mut options = names.clone();
                        if !options.contains(&label) {
                            options.insert(0, label.clone());
                        }
                        view! {
                            <div class="selected-box" data-testid="selected-box">
                                <h3>"Selected box"</h3>
                                <label class="inline-field">
                                    <span>"Label"</span>
                                    <select
                                        data-testid="box-label"
                                        on:change=move |ev| {
                                            release_focus(&ev);
                                            on_label.run(event_target_value(&ev));
                                        }
                                    >
                                        {options
                                            .into_iter()
                                            .map(|o| {
                                                let sel = o == label;
                                                view! { <option value=o.clone() selected=sel>{o.clone()}</option> }
                                            })
                                            .collect_view()}
                                    </select>
                                </label>
                                <p class="muted small" data-testid="box-coords">
                                    {format!(
                                        "{:.0}, {:.0} – {:.0}, {:.0} ({:.0}×{:.0} px)",
                                        rect.x0, rect.y0, rect.x1, rect.y1, rect.width(), rect.height()
                                    )}
                                </p>
                                <button class="button danger small" data-testid="delete-box" on:click=move |_| on_delete.run(())>
                                    "Delete box"
                                </button>
                            </div>
                        }
                    })
            }}
        </div>
    }
}

/// OCR: every box with a field for its text.
#[component]
fn OcrList(
    ed: StoredValue<Editor, LocalStorage>,
    version: RwSignal<u64>,
    selected_uid: RwSignal<Option<u64>>,
    on_select: Callback<u64>,
    on_text: Callback<(u64, String)>,
    on_delete: Callback<u64>,
    canvas_ref: NodeRef<html::Canvas>,
) -> impl IntoView {
    let uids = move || {
        version.track();
        ed.try_with_value(|e| e.boxes.iter().map(|b| b.uid).collect::<Vec<u64>>())
            .unwrap_or_default()
    };
    let back_to_canvas = move || {
        if let Some(c) = canvas_ref.get_untracked() {
            focus_quietly(&c);
        }
    };
    view! {
        <div class="ocr-panel">
            <h2 class="panel-title">"Text boxes"</h2>
            <Show
                when=move || !uids().is_empty()
                fallback=|| view! { <p class="muted small" data-testid="ocr-empty">"Draw a box around a line of text, then type what it says."</p> }
            >
                <ol class="ocr-list" data-testid="ocr-list">
                    <For each=uids key=|uid| *uid let:uid>
                        <li
                            class="ocr-row"
                            class:selected=move || selected_uid.get() == Some(uid)
                            data-testid="ocr-row"
                        >
                            <span class="ocr-num">
                                {move || {
                                    version.track();
                                    ed.try_with_value(|e| e.boxes.iter().position(|b| b.uid == uid).map(|i| i + 1))
                                        .flatten()
                                        .unwrap_or(0)
                                }}
                            </span>
                            <input
                                type="text"
                                id=format!("ocr-text-{uid}")
                                data-testid="ocr-text"
                                dir="auto"
                                autocomplete="off"
                                spellcheck="false"
                                placeholder="Text in this box"
                                aria-label="Text in this box"
                                prop:value=move || {
                                    version.track();
                                    ed.try_with_value(|e| e.boxes.iter().find(|b| b.uid == uid).and_then(|b| b.text.clone()))
                                        .flatten()
                                        .unwrap_or_default()
                                }
                                on:focus=move |_| on_select.run(uid)
                                on:input=move |ev| on_text.run((uid, event_target_value(&ev)))
                                on:keydown=move |ev| {
                                    if ev.key() == "Enter" || ev.key() == "Escape" {
                                        ev.prevent_default();
                                        back_to_canvas();
                                    }
                                }
                            />
                            <button
                                class="icon-button danger"
                                data-testid="ocr-delete"
                                title="Delete this box"
                                aria-label="Delete this box"
                                on:click=move |_| on_delete.run(uid)
                            >
                                "×"
                            </button>
                        </li>
                    </For>
                </ol>
            </Show>
        </div>
    }
}
