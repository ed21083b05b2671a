"""Views shared by the pages: downloads, the layer-map heatmap, the normalisation notice."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image, ImageDraw, ImageFont

import explainers
from explainers import render
from ui import cache, prefs

NORMALISATION_LABELS = {"per_map": "per map", "joint": "joint"}
NORMALISATION_TEXT = {
    "per_map": "Each map is normalised to its own maximum (per map): shapes compare, strengths do not.",
    "joint": "All maps share one scale (joint: divided by the largest maximum among them): "
             "strengths compare across the grid.",
}


def faint_notice(maps: dict, policy: str = "per_map", where=st) -> None:
    """Under per-map normalisation, a warning for each map with a tiny dynamic range."""
    if policy != "per_map":
        return
    for title, why in render.faint_maps(maps).items():
        where.warning(f"{title} {why}.")


def normalisation_picker(key: str, default: str = "per_map") -> str:
    options = list(NORMALISATION_LABELS)
    return st.radio("Normalisation", options, index=options.index(default), horizontal=True,
                    format_func=NORMALISATION_LABELS.get, key=key,
                    help="How maps are scaled to colours. Joint puts every map on one scale.")


DOWNLOAD_SIZES = [256, 512, 1024, 2048]


def _as_image(picture) -> Image.Image:
    """A PIL image from a PIL image, an H x W (x 3) uint8 array or encoded bytes (a cached PNG)."""
    if isinstance(picture, Image.Image):
        return picture
    if isinstance(picture, bytes):
        return Image.open(io.BytesIO(picture))
    return Image.fromarray(np.asarray(picture))


def slide(panels, size: int = 512) -> Image.Image:
    """A figure for slides: each (label, picture, resample) panel scaled so its longer side is
    ``size`` px ("nearest" keeps a layer map's cells square and sharp; "smooth" is bicubic, for
    photos and overlays), side by side on white with its label underneath."""
    font = ImageFont.load_default(size=max(12, size // 22))
    pad = max(6, size // 40)
    scaled = []
    for label, picture, resample in panels:
        im = _as_image(picture).convert("RGB")
        k = size / max(im.size)
        im = im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))),
                       Image.NEAREST if resample == "nearest" else Image.BICUBIC)
        scaled.append((label, im))
    text_h = font.getbbox("Ag")[3] + 2 * pad
    width = sum(im.width for _, im in scaled) + pad * (len(scaled) + 1)
    height = max(im.height for _, im in scaled) + 2 * pad + text_h
    out = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(out)
    x = pad
    for label, im in scaled:
        out.paste(im, (x, pad))
        text = label
        while draw.textlength(text, font=font) > im.width and len(text) > 4:
            text = text[:-2].rstrip() + "…"
        draw.text((x + (im.width - draw.textlength(text, font=font)) / 2, pad + im.height + pad), text,
                  fill="black", font=font)
        x += im.width + pad
    return out


def layer_map_picture(layer_map: np.ndarray, cmap: str = "jet") -> Image.Image:
    """A layer map (h x w, at layer resolution) colour-mapped on its own maximum, one pixel per cell."""
    (m01,) = render.normalize([np.maximum(layer_map, 0)], "per_map")
    return Image.fromarray(render.colorize(m01, cmap))


def npy_bytes(array) -> bytes:
    """.npy of one array, or .npz of named arrays when given a dict (maps of different shapes)."""
    buf = io.BytesIO()
    if isinstance(array, dict):
        np.savez(buf, **{k: np.asarray(v) for k, v in array.items()})
    else:
        np.save(buf, np.asarray(array))
    return buf.getvalue()


def downloads(key: str, stem: str, picture, array, settings: dict, what: str = "map",
              array_what: str | None = None, image=None, layer_map=None, cmap: str = "jet") -> None:
    """Download buttons whose labels say what they hold: a figure for slides (PNG at the chosen
    size, the model's view of the image beside the map(s) when ``image`` is given, each panel
    labelled; ``picture`` is one image or a list of (label, image) panels), the unnormalised
    array(s) (.npy, or .npz when a dict), the settings (JSON), and, with ``layer_map``, the map
    at layer resolution scaled up by nearest neighbour (square cells). A download does not rerun
    the page (``on_click="ignore"``)."""
    size = st.select_slider("Download size (px, longer side of each panel)", DOWNLOAD_SIZES,
                            key=prefs.bind(f"{key}_size", "download_size", 512, DOWNLOAD_SIZES))
    panels = [("Image (as the model sees it)", image, "smooth")] if image is not None else []
    if isinstance(picture, list):
        panels += [(label, pic, "smooth") for label, pic in picture]
    else:
        panels.append((what, picture, "smooth"))
    # one row that wraps, each button as wide as its label: in fixed columns Streamlit cut the
    # labels with an ellipsis ("Grad-CAM of Egyptian cat: values, unnor...")
    row = st.container(horizontal=True, wrap=True, gap="small")
    beside = " with the image" if image is not None else ""
    # figures are drawn and encoded only when their button is pressed (a callable; Streamlit runs
    # it on another thread), so a rerun never pays for a 2048-px PNG nobody asked for
    row.download_button(f"{what}{beside} (PNG, {size} px)", lambda: render.png_bytes(slide(panels, size)),
                        f"{stem}.png", "image/png", key=f"{key}_png", on_click="ignore")
    ext = "npz" if isinstance(array, dict) else "npy"
    shape = "" if isinstance(array, dict) else f", {'x'.join(map(str, np.shape(array)))}"
    row.download_button(f"{array_what or what}: values, unnormalised (.{ext}{shape})", lambda: npy_bytes(array),
                        f"{stem}.{ext}", key=f"{key}_npy", on_click="ignore")
    row.download_button("Settings to make it again (JSON)", json.dumps(settings, indent=2, default=float),
                        f"{stem}.json", "application/json", key=f"{key}_json", on_click="ignore")
    if layer_map is not None:
        h, w = layer_map.shape
        cells = [(f"{what}: layer map {h}x{w}", layer_map_picture(layer_map, cmap), "nearest")]
        row.download_button(f"Layer map, {h}x{w} cells (PNG, {size} px, nearest)",
                            lambda: render.png_bytes(slide(cells, size)),
                            f"{stem}_layer_map.png", "image/png", key=f"{key}_layer_png", on_click="ignore")


def heatmap(z: np.ndarray, title: str, *, colorscale: str | list = "Jet", height: int = 360,
            width: int | None = 420, zmid: float | None = None) -> go.Figure:
    """A map as a Plotly heatmap in image orientation with square cells and hover values."""
    fig = go.Figure(go.Heatmap(z=z, colorscale=colorscale, zmid=zmid,
                               hovertemplate="row %{y}, col %{x}: %{z:.4f}<extra></extra>"))
    fig.update_layout(height=height, width=width, margin=dict(l=0, r=0, t=28, b=0), title=title,
                      yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain"),
                      xaxis=dict(constrain="domain"))
    return fig


def settings_of(selection, loaded, **extra) -> dict:
    """What a download was made from: enough to make it again."""
    return {"model": selection.model_id, "weights": loaded.weights, "weights_sha256": loaded.sha256,
            "image": selection.name, "image_digest": selection.digest, **extra}


def layer_picker(model_id: str, key: str, where=st) -> str:
    """The model's spatial layers with their shapes, starting at its default layer; the choice
    is the model's (``layer:<model>``), shared by every page, so a new model starts at its own
    default and a page switch keeps the layer."""
    options = cache.layers(model_id)
    names = [n for n, _ in options]
    default = cache.load_model(model_id).default_layer
    bound = prefs.bind(f"{key}_{model_id}", f"layer:{model_id}", default, names)
    return where.selectbox("Layer", names, format_func=dict(options).get, key=bound)


def class_picker(categories, probs, key: str, label: str = "Class", index: int | None = None,
                 where=st, pref: str | None = None) -> int:
    """Any class by name (searchable), with its probability; starts at ``index`` (default: the
    top-1). Key it by model and image so a new image starts at its own top-1; ``pref`` (default:
    the key) names the choice, so pages that pass the same one share it."""
    options = list(range(len(categories)))
    default = int(np.argmax(probs)) if index is None else index
    bound = prefs.bind(key, pref or key, default, options)
    return where.selectbox(label, options, format_func=lambda i: f"{categories[i]} ({probs[i]:.1%})", key=bound)


def image_class_pref(model_id: str, digest: str) -> str:
    """The preference of 'the class explained' for one model and image, shared by the pages."""
    return f"class:{model_id}:{digest}"


def opacity_slider(key: str, where=st, label: str = "Overlay opacity") -> float:
    return where.slider(label, 0.0, 1.0, step=0.05, key=prefs.bind(key, "alpha", 0.5))


def colormap_picker(key: str, where=st) -> str:
    return where.selectbox("Colour map", render.COLORMAPS, key=prefs.bind(key, "cmap", "jet", render.COLORMAPS))


# ----------------------------------------------------------------------------- methods


def method_title(name: str) -> str:
    return explainers.get_method(name).title


def method_note(name: str, where=st) -> None:
    """What the method computes and where it comes from; a warning when its map does not
    depend on the class."""
    m = explainers.get_method(name)
    where.caption(f"**{m.title}** ({m.paper}): {m.summary}. Cost: {m.passes}.")
    if not m.class_discriminative:
        where.warning(f"{m.title} is not class-discriminative: its map is (nearly) the same whatever "
                      "class is picked, so it shows what the network looks at, not why it chose a class.")


def estimate(model_id: str, cost: explainers.Cost) -> tuple[float, str]:
    """Seconds a cost should take here: its passes times this model's measured seconds per
    forward and per backward (see ``cache.pass_seconds``), and how that was found, in words."""
    fwd, bwd = cache.pass_seconds(model_id)
    seconds = cost.forwards * fwd + cost.backwards * bwd
    how = (f"one forward pass of this model takes {duration(fwd)} and a backward {duration(bwd)} on this "
           "machine (measured)")
    return seconds, how


def duration(seconds: float) -> str:
    """A measured time in words with the digits it deserves: "0.04 ms", "1.5 ms", "2.3 s" (a
    0.04 ms backward read "0.0 ms")."""
    ms = 1000 * seconds
    if ms >= 1000:
        return f"{seconds:.1f} s"
    if ms >= 1:
        return f"{ms:.1f} ms"
    return f"{ms:.2g} ms" if ms > 0 else "under 0.01 ms"


def maps_on_demand(model_id: str, digest: str, layer: str, wanted: list[tuple[str, int]],
                   image: np.ndarray, key: str, where=st) -> dict:
    """The maps of (method, class) pairs: cheap ones at once (a backward from the kept forward);
    forward-heavy ones only after the user sees their cost and presses Run, with a progress bar
    while they run; once computed they are kept. Returns {(method, class): arrays or None}."""
    out, pending = {}, []
    for method, cls in wanted:
        cost = cache.method_cost(model_id, digest, layer, method, image)
        if not cost.heavy:
            out[(method, cls)] = cache.explanation(model_id, digest, layer, method, cls, image)
            continue
        out[(method, cls)] = cache.stored_explanation(model_id, digest, layer, method, cls)
        if out[(method, cls)] is None:
            pending.append((method, cls, cost))
    if not pending:
        return out
    total = 0.0
    lines = []
    for method, cls, cost in pending:
        seconds, how = estimate(model_id, cost)
        total += seconds
        lines.append(f"- **{method_title(method)}**: {cost.note} (about {seconds:.1f} s)")
    ask = where.empty()  # the box and its button; gone once pressed (the maps take their place)
    with ask.container():
        st.info("Forward-heavy method(s) not run yet:\n" + "\n".join(lines)
                + f"\n\nAbout {total:.1f} s in all here: {how}.")
        pressed = st.button(f"Run {len(pending)} forward-heavy map(s)", key=f"{key}_run")
    if pressed:
        ask.empty()
        bar = where.progress(0.0, text="Starting...")
        started = time.perf_counter()
        for i, (method, cls, cost) in enumerate(pending):
            def tell(done, count, i=i, method=method):
                part = (i + (done / count if count else 1.0)) / len(pending)
                bar.progress(min(part, 1.0), text=f"{method_title(method)}: {done} of {count}")
            out[(method, cls)] = cache.heavy_explanation(model_id, digest, layer, method, cls, image, progress=tell)
        bar.empty()
        where.caption(f"Ran in {time.perf_counter() - started:.1f} s (estimated {total:.1f} s).")
    return out
