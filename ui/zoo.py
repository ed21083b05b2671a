"""Getting models into the app: a weights download with a progress bar, an uploaded checkpoint
becoming a model, and the plugins' import errors as messages.

Who sees what: an upload stays in the uploader's session unless an admin (the admin secret,
given in this session) shares it; server paths (weights files, plugin files, the uploads folder)
are shown to an admin, and a visitor is told the same in a sentence without them."""
from __future__ import annotations

import streamlit as st

import model_zoo
from ui import cache, studies
from ui.text import count, plain, without_paths


def listed() -> list[str]:
    """The models this session may use: the shared ones and its own uploads."""
    return model_zoo.list_models(viewer=cache.viewer())


def for_this_visitor(text) -> str:
    """``text`` escaped, with the server's paths left out unless this session is an admin."""
    return plain(text if studies.is_admin() else without_paths(text))


def weights_button(model_id: str, key: str, where=st) -> None:
    """"Download weights (NN MB)" for a model whose weights are missing: the download feeds an
    ``st.progress`` bar (bytes done / total); a failure is one line with the URL and the path to
    place the file at; success reruns the page with the model ready."""
    spec = model_zoo.get_spec(model_id)
    size = f" ({spec.weights_mb:.0f} MB)" if spec.weights_mb else ""
    admin = studies.is_admin()
    if spec.weights_url is None and spec.pretrained is None:
        where.warning(f"{model_id} has no weights on this machine and no download address: " +
                      (f"put its state dict at `{spec.weights_file()}`." if admin else
                       "the administrator can put its state dict on the server (the admin secret, on the "
                       "Model zoo page, shows where)."))
        return
    if not where.button(f"Download weights{size}", key=key, type="primary"):
        where.caption((f"From {spec.weights_url}" + (f" into `{spec.weights_file()}`." if admin else ".")) if
                      spec.weights_url else "Through timm's own download and cache.")
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
        where.error(for_this_visitor(err))
        return
    bar.empty()
    st.rerun()


def plugin_notices(where=st) -> None:
    """Plugins that failed to import and saved uploads that could not be registered: by name
    and why for an admin; a visitor is told how many, in a sentence (no server paths)."""
    plugins, saved = model_zoo.plugin_errors(), dict(model_zoo.uploads.errors)
    if not plugins and not saved:
        return
    if not studies.is_admin():
        parts = [count(len(plugins), "model plugin")] if plugins else []
        parts += [count(len(saved), "saved model")] if saved else []
        where.warning(f"{' and '.join(parts)} could not be loaded; every other model works. The administrator "
                      "sees why on the Model zoo page, after giving the admin secret.")
        return
    for plugin, why in plugins.items():
        where.warning(plain(f"The model plugin {plugin} could not be loaded: {why}"))
    for name, why in saved.items():
        where.warning(plain(f"The saved model {name} (in {model_zoo.uploads.models_dir()}) could not be loaded: {why}"))


def upload_form() -> None:
    """A checkpoint for a registered architecture becomes a model of its own: this session's
    alone, or (an admin's choice, with the admin secret) every visitor's, kept across restarts."""
    # classifiers: an upload becomes a classifier (the captioner, the VQA model and the agents have
    # their own pages, and an agent of your own its own routes: a Stable-Baselines3 zip, a plugin)
    archs = [m for m in listed() if model_zoo.get_spec(m).family != "upload"
             and model_zoo.get_spec(m).task == "classification"]
    share = st.checkbox("Share it with every visitor and keep it across restarts (admin: needs the admin secret)",
                        key="zoo_upload_share")
    if share:
        why = studies.admin_login(key="zoo_admin_secret")
        if why is not None:
            st.caption(plain(f"To share an upload: {why}."))
    limit = model_zoo.uploads.max_upload_bytes() / 2**20
    with st.form("zoo_upload", clear_on_submit=False):
        st.markdown("**Add your own checkpoint** (a state dict saved with `torch.save(model.state_dict(), path)`)")
        a, b = st.columns(2)
        arch = a.selectbox("Architecture", archs, index=archs.index("resnet18") if "resnet18" in archs else 0,
                           key="zoo_upload_arch")
        name = b.text_input("Name it (letters, digits, - or _)", key="zoo_upload_name")
        weights = st.file_uploader(f"Checkpoint (.pt / .pth, at most {limit:.0f} MB)", key="zoo_upload_weights")
        names = st.file_uploader("Class names (optional: a text file, one per line, or a JSON list)",
                                 key="zoo_upload_names")
        submitted = st.form_submit_button("Add the model", type="primary")
    if not submitted:
        return
    if weights is None:
        st.warning("Choose a checkpoint file first.")
        return
    if share and not studies.is_admin():
        st.error("Sharing an upload with every visitor needs the admin secret (above); untick the box to add "
                 "the model to this session alone.")
        return
    try:
        classes = model_zoo.uploads.parse_class_names(names.getvalue()) if names is not None else None
        with st.spinner("Checking the checkpoint against the architecture..."):
            model_id = model_zoo.save_upload(name, arch, weights.getvalue(), classes, filename=weights.name,
                                             owner=None if share else cache.viewer())
    except model_zoo.ZooError as err:
        st.error(for_this_visitor(err))
        return
    loaded = cache.load_model(model_id)
    kept = "every visitor sees it" if share else "this session alone sees it, until the app restarts"
    st.success(plain(f"Added {model_id}: {len(loaded.categories)} classes, sha256 {loaded.sha256[:16]}...; "
                     f"{kept}. Choose it in the sidebar's model list."))


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
