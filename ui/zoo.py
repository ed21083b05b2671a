"""Getting models into the app: a weights download with a progress bar, an uploaded checkpoint
becoming a model, and the plugins' import errors as messages."""
from __future__ import annotations

import streamlit as st

import model_zoo
from ui import cache
from ui.text import plain


def weights_button(model_id: str, key: str, where=st) -> None:
    """"Download weights (NN MB)" for a model whose weights are missing: the download feeds an
    ``st.progress`` bar (bytes done / total); a failure is one line with the URL and the path to
    place the file at; success reruns the page with the model ready."""
    spec = model_zoo.get_spec(model_id)
    size = f" ({spec.weights_mb:.0f} MB)" if spec.weights_mb else ""
    if spec.weights_url is None and spec.pretrained is None:
        where.warning(f"{model_id} has no weights on this machine and no download address: put its "
                      f"state dict at `{spec.weights_file()}`.")
        return
    if not where.button(f"Download weights{size}", key=key, type="primary"):
        where.caption(f"From {spec.weights_url} into `{spec.weights_file()}`." if spec.weights_url else
                      "Through timm's own download and cache.")
        return
    bar = where.progress(0.0, text=f"Downloading {model_id}...")
    shown = {"step": -1}

    def progress(done: int, total: int | None) -> None:
        if total:
            step = int(100 * done / total)
            if step != shown["step"]:  # at most 101 updates, whatever the file's size
                shown["step"] = step
                bar.progress(done / total, text=f"{done / 2**20:.1f} of {total / 2**20:.1f} MB")
        elif done // 2**20 != shown["step"]:
            shown["step"] = done // 2**20
            bar.progress(0.0, text=f"{done / 2**20:.1f} MB")

    try:
        model_zoo.fetch_weights(model_id, progress=progress)
    except model_zoo.WeightsUnavailable as err:
        bar.empty()
        where.error(plain(str(err)))
        return
    bar.empty()
    st.rerun()


def plugin_notices(where=st) -> None:
    """Plugins that failed to import and saved uploads that could not be registered, by name."""
    for plugin, why in model_zoo.plugin_errors().items():
        where.warning(plain(f"The model plugin {plugin} could not be loaded: {why}"))
    for name, why in model_zoo.uploads.errors.items():
        where.warning(plain(f"The saved model {name} (in {model_zoo.uploads.models_dir()}) could not be loaded: {why}"))


def upload_form() -> None:
    """A checkpoint for a registered architecture becomes a model of its own."""
    archs = [m for m in model_zoo.list_models() if model_zoo.get_spec(m).family != "upload"]
    with st.form("zoo_upload", clear_on_submit=False):
        st.markdown("**Add your own checkpoint** (a state dict saved with `torch.save(model.state_dict(), path)`)")
        a, b = st.columns(2)
        arch = a.selectbox("Architecture", archs, index=archs.index("resnet18") if "resnet18" in archs else 0,
                           key="zoo_upload_arch")
        name = b.text_input("Name it (letters, digits, - or _)", key="zoo_upload_name")
        weights = st.file_uploader("Checkpoint (.pt / .pth)", key="zoo_upload_weights")
        names = st.file_uploader("Class names (optional: a text file, one per line, or a JSON list)",
                                 key="zoo_upload_names")
        submitted = st.form_submit_button("Add the model", type="primary")
    if not submitted:
        return
    if weights is None:
        st.warning("Choose a checkpoint file first.")
        return
    try:
        classes = model_zoo.uploads.parse_class_names(names.getvalue()) if names is not None else None
        with st.spinner("Checking the checkpoint against the architecture..."):
            model_id = model_zoo.save_upload(name, arch, weights.getvalue(), classes, filename=weights.name)
    except model_zoo.ZooError as err:
        st.error(plain(str(err)))
        return
    loaded = cache.load_model(model_id)
    st.success(plain(f"Added {model_id}: {len(loaded.categories)} classes, sha256 {loaded.sha256[:16]}...; "
                     "choose it in the sidebar's model list."))


def timm_form() -> None:
    """Add a timm model by name (with the optional package timm installed)."""
    if not model_zoo.timm_models.available():
        st.caption("With the optional package timm installed (pip install timm), any timm model can be added "
                   "here as timm:<name>.")
        return
    with st.form("zoo_timm"):
        name = st.text_input("A timm model by name (e.g. resnet18, convnext_tiny, efficientnet_b0)", key="zoo_timm_name")
        submitted = st.form_submit_button("Add the timm model")
    if submitted and name.strip():
        try:
            spec = model_zoo.get_spec(model_zoo.timm_models.PREFIX + name.strip())
        except model_zoo.ZooError as err:
            st.error(plain(str(err)))
            return
        st.success(plain(f"Added {spec.id}; choose it in the sidebar's model list."))
