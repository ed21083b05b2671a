"""The localisation-and-pointing protocol at scale (the paper's ILSVRC and pointing results):
batches of images decoded by ``DataLoader`` workers, one forward and one batched backward per
batch (Grad-CAM of each image's predicted class and of its true class), per-image results
appended to a results file as they finish (a rerun with the same settings skips them), and the
same per-shard function on Ray actors when one machine is not enough.

Per image (records, one JSON line each; the localisation and pointing rules are
``metrics.localise_and_point``, the streaming engine's too):

* ``loc_error_top1``: 1 unless the box of the predicted class's map (threshold x max, largest
  8-connected segment, ``metrics.box_from_map``) names a true class and overlaps one of its boxes
  by IoU >= 0.5 (the ILSVRC rule, every box of the image);
* ``gt_known``: the box of the true class's map (the first annotated object's class) overlaps
  one of that class's boxes by IoU >= 0.5;
* ``pointing_hits`` of ``pointing_classes``: one pointing trial per class present, a hit when the
  maximum of the class's map lies within ``tolerance`` pixels of one of its instances (their
  masks in the shapes world, boxes otherwise);
* ``correct``: the predicted class is one of the image's classes.

The report sums the records in image order, so a resumed run, a run in other batches and the Ray
engine (whose shards are merged by image) give the same report.

Faults cost an item, not the run. The results file is read line by line: a line that is not a
valid record of one of this run's images (cut by an interruption, hand-edited, another image's
name, a second record of an image) is dropped, counted by reason in the report
(``dropped_records``) and the image runs again; a file whose first line is not a header is
refused with a message, and one run at a time may write a results file (a lock). A DataLoader
worker that dies (killed, out of memory) is replaced: the loader restarts on the images not yet
done (``worker_restarts``). On Ray, a shard whose actor dies is run again on a new actor
(``retried_shards``).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import explainers

from . import metrics
from .data import fit_to_image
from .groundtruth import batch_maps, per_sample

__all__ = ["auto_workers", "Settings", "ShapesItems", "FileItems", "loc_pointing", "report_from", "run_ray",
           "SettingsMismatch", "ResultsFileError", "MAX_RESTARTS", "faults"]

MAX_RESTARTS = 3  # DataLoader restarts per run, and new actors per Ray shard, before the run gives up


def auto_workers() -> int:
    """DataLoader workers for this machine: the cores beyond the two that the forward pass's
    threads use, at most 4 (none on a 2-core machine, where a decoding worker measurably slowed
    resnet50's batches: 0.85 of the limit with one worker, 0.95 without; bench/README.md)."""
    import os
    return max(0, min(4, (os.cpu_count() or 1) - 2))


class ResultsFileError(ValueError):
    """A results file that cannot be used: not one of this protocol's, or in use by another run."""


class SettingsMismatch(ResultsFileError):
    """A results file made with other settings (or another model) than this run's."""


@dataclass(frozen=True)
class Settings:
    threshold: float = 0.15
    tolerance: float = 15.0
    method: str = "gradcam"


class ShapesItems(Dataset):
    """Shapes scenes by index (made in the worker); objects with their masks' boxes."""

    def __init__(self, n: int, seed: int = 20000, kind: str = "single", preprocess=None):
        self.n, self.seed, self.kind, self.preprocess = n, seed, kind, preprocess
        self.skipped: list = []

    def __len__(self):
        return self.n

    def key(self) -> dict:
        return {"data": f"shapes:{self.kind}", "seed": self.seed}

    def name_of(self, i: int) -> str:
        return f"shapes-{self.kind}-{self.seed}-{i}"

    def __getitem__(self, i):
        from model_zoo.shapes.world import make_scene
        s = make_scene(self.seed, int(i), self.kind)
        image = Image.fromarray(s.image)
        x = self.preprocess(image)
        if tuple(x.shape[-2:]) == s.image.shape[:2]:
            return int(i), self.name_of(i), x, [(o.name, tuple(o.box), o.mask) for o in s.objects], None
        # a model whose input is another size: boxes follow its resize and crop, masks give way
        moved = [(o.name, self.preprocess.view_box(tuple(o.box), image.size)) for o in s.objects]
        return int(i), self.name_of(i), x, [(n, b, None) for n, b in moved if b is not None], None


class FileItems(Dataset):
    """Images of a folder by index: ``source`` has ``files()`` and ``annotate(path)`` (a VOC
    folder, an ImageNet validation folder). An image that cannot be used comes back with the
    reason (counted in the report), never raised from a worker."""

    def __init__(self, source, preprocess, n: int | None = None):
        self.source, self.preprocess = source, preprocess
        self.paths = source.files()[:n] if n is not None else source.files()

    def __len__(self):
        return len(self.paths)

    def key(self) -> dict:
        return {"data": str(self.source.root)}

    def name_of(self, i: int) -> str:
        return self.paths[int(i)].name

    def __getitem__(self, i):
        from explainers.images import ImageError, open_image
        p = self.paths[int(i)]
        objects = self.source.annotate(p)
        if isinstance(objects, str):
            return int(i), p.name, None, [], objects
        try:
            img = open_image(p)
            self.preprocess.check(img.size)
        except (ImageError, ValueError) as err:
            return int(i), p.name, None, [], str(err).split(": ", 1)[-1][:200]
        objects = fit_to_image(objects, img.size)
        if isinstance(objects, str):
            return int(i), p.name, None, [], objects
        moved = [(o.name, self.preprocess.view_box(o.box, img.size)) for o in objects]
        return int(i), p.name, self.preprocess(img), [(n, b, None) for n, b in moved if b is not None], None


def _collate(batch):
    return batch  # a list of (index, name, tensor or None, objects, why skipped)


def _records(loaded, batch, settings: Settings, device) -> list[dict]:
    names = list(loaded.categories)
    index = {n: i for i, n in enumerate(names)}
    out = [{"i": i, "name": name, "skipped": why} for i, name, x, _, why in batch if x is None]
    rows = [b for b in batch if b[2] is not None]
    if not rows:
        return out
    x = torch.stack([r[2] for r in rows]).to(device)
    instances = [[metrics.Instance(index[n], b, m) for n, b, m in r[3] if n in index] for r in rows]
    present = [list(dict.fromkeys(o.cls for o in objs)) for objs in instances]  # the classes, in order
    cap = explainers.Capture(loaded.model, x, layer=loaded.default_layer)
    pred = cap.output.detach().argmax(1)
    # one batched backward for the predicted classes, one for each k-th present class (an image
    # with fewer classes repeats one; its repeat is not used)
    targets = [per_sample(pred, "predicted class")]
    for k in range(max(1, max(map(len, present)))):
        kth = [cs[k] if k < len(cs) else (cs[0] if cs else int(p)) for cs, p in zip(present, pred.tolist())]
        targets.append(per_sample(torch.tensor(kth), f"present class {k + 1}"))
    maps = [batch_maps(e, len(rows)) for e in cap.explain(settings.method, targets)]
    for j, (i, name, _, objects, _) in enumerate(rows):
        p = int(pred[j])
        truth = [(n, b) for n, b, _ in objects]
        rec = {"i": i, "name": name, "skipped": None, "predicted": names[p],
               "correct": any(n == names[p] for n, _ in truth), "objects_not_in_model": sum(n not in index for n, _ in truth)}
        rec["loc_error_top1"] = 1 - metrics.localisation([(names[p], metrics.box_from_map(maps[0][j], settings.threshold))],
                                                         truth)
        gt_known, hits = metrics.localise_and_point({c: maps[1 + k][j] for k, c in enumerate(present[j])},
                                                    instances[j], settings.threshold, settings.tolerance)
        rec["gt_known"] = None if gt_known is None else int(gt_known)
        rec["pointing_hits"], rec["pointing_classes"] = sum(hits.values()), len(hits)
        out.append(rec)
    return out


def faults(report: dict) -> list[str]:
    """What the run survived, in words (for the command line): dropped lines of the results
    file by reason, DataLoader restarts, retried Ray shards."""
    out = []
    dropped = report.get("dropped_records") or {}
    if dropped:
        n = sum(dropped.values())
        out.append(f"dropped {n} line{'s' if n != 1 else ''} of the results file ("
                   + ", ".join(f"{c} {why}" for why, c in sorted(dropped.items())) + ")")
    if report.get("worker_restarts"):
        out.append(f"restarted the image loader {report['worker_restarts']} time(s) after a worker died")
    if report.get("retried_shards"):
        out.append(f"ran {report['retried_shards']} shard(s) again on a new actor after theirs died")
    return out


def report_from(records: Sequence[dict], settings: Settings, model_id: str) -> dict:
    """The report of a set of per-image records, summed in image order."""
    records = sorted(records, key=lambda r: r["i"])
    used = [r for r in records if r["skipped"] is None]
    skipped = [{"file": r["name"], "reason": r["skipped"]} for r in records if r["skipped"] is not None]

    def mean(key):
        vals = [r[key] for r in used if r.get(key) is not None]
        return float(sum(vals) / len(vals)) if vals else float("nan")

    trials = sum(r["pointing_classes"] for r in used)

    return {"model": model_id, "images": len(used), "settings": asdict(settings), "skipped_files": skipped,
            "top1_accuracy": mean("correct"), "localisation_error_top1": mean("loc_error_top1"),
            "gt_known_localisation_accuracy": mean("gt_known"),
            "pointing": sum(r["pointing_hits"] for r in used) / trials if trials else float("nan"),
            "pointing_trials": trials,
            "images_with_a_true_class": sum(r.get("gt_known") is not None for r in used),
            "objects_not_in_model_classes": sum(r.get("objects_not_in_model", 0) for r in used)}


def _header(loaded, items, settings: Settings) -> dict:
    return {"model": loaded.id, "weights_sha256": loaded.sha256, "layer": loaded.default_layer,
            "settings": asdict(settings), **items.key()}


def _why_not_a_record(rec, items) -> str | None:
    """Why a results-file line is not a valid record of one of ``items``' images (None: it is)."""
    if not isinstance(rec, dict):
        return "not a record"
    i = rec.get("i")
    if type(i) is not int:
        return "no image index"
    if not 0 <= i < len(items):
        return "an image index outside this run's images"
    if not isinstance(rec.get("name"), str):
        return "no image name"
    if hasattr(items, "name_of") and rec["name"] != items.name_of(i):
        return "another image's name"
    if "skipped" not in rec or not (rec["skipped"] is None or isinstance(rec["skipped"], str)):
        return "no skipped field"
    if rec["skipped"] is not None:
        return None
    if not isinstance(rec.get("predicted"), str) or type(rec.get("correct")) is not bool:
        return "no prediction"
    if type(rec.get("objects_not_in_model")) is not int or rec.get("loc_error_top1") not in (0, 1):
        return "no localisation result"
    if "gt_known" not in rec or rec["gt_known"] not in (None, 0, 1) or type(rec["gt_known"]) is bool:
        return "no localisation result"
    hits, trials = rec.get("pointing_hits"), rec.get("pointing_classes")
    if type(hits) is not int or type(trials) is not int or not 0 <= hits <= trials \
            or (trials == 0) != (rec["gt_known"] is None):
        return "no pointing result"
    return None


def _parse_results(text: str, path: Path, header: dict, items) -> tuple[list[dict], Counter]:
    """The valid records of a results file's text, one per image (the first), and what was
    dropped, by reason."""
    lines = text.splitlines()
    if not lines:
        return [], Counter()
    try:
        head = json.loads(lines[0])
    except json.JSONDecodeError:
        head = None
    if not isinstance(head, dict) or not isinstance(head.get("header"), dict):
        raise ResultsFileError(f"{path} is not a results file of this protocol (its first line is not its header): "
                               f"give another results file or delete this one")
    if head != {"header": header}:
        raise SettingsMismatch(f"{path} was made with other settings ({head.get('header')}); this run is "
                               f"{header}: give another results file or delete this one")
    done, seen, dropped = [], set(), Counter()
    for line in lines[1:]:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            dropped["not JSON (a line cut by an interruption?)"] += 1
            continue
        why = _why_not_a_record(rec, items)
        if why is None and rec["i"] in seen:
            why = "a second record of an image"
        if why is not None:
            dropped[why] += 1
            continue
        seen.add(rec["i"])
        done.append(rec)
    return done, dropped


def _open_results(path: Path, header: dict, items):
    """The results file opened for appending and locked for this run, with its valid records
    and what was dropped; the file is rewritten without the dropped lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = path.open("a+", encoding="utf-8", errors="replace")
    try:
        try:
            import fcntl
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock (one run at a time is then the user's care)
            pass
        except OSError:
            raise ResultsFileError(f"another run is writing to {path}: wait for it to finish, or give another "
                                   f"results file") from None
        fh.seek(0)
        done, dropped = _parse_results(fh.read(), path, header, items)
        if dropped or not done:  # rewrite: the header and the valid records, nothing else
            fh.seek(0)
            fh.truncate()
            fh.write("".join(json.dumps(r) + "\n" for r in [{"header": header}, *done]))
            fh.flush()
        return fh, done, dropped
    except BaseException:
        fh.close()
        raise


def _worker_died(err: RuntimeError) -> bool:
    text = str(err)
    return "DataLoader worker" in text and ("exited unexpectedly" in text or "killed by signal" in text)


def loc_pointing(loaded, items, settings: Settings = Settings(), *, batch: int = 16, workers: int = 0,
                 device: str = "cpu", results: Path | None = None, indices: Sequence[int] | None = None,
                 progress: Callable[[int, int], None] | None = None, stop_after: int | None = None) -> dict:
    """Run the protocol over ``items`` (or the ``indices`` of them): the report, with
    ``records`` (every image's) and ``seconds``. ``results``: a JSON-lines file; images already
    in it are skipped and new ones appended as each batch finishes; its invalid lines are dropped
    and counted (``dropped_records``, by reason). A dead DataLoader worker restarts the loader on
    the images not yet done (``worker_restarts``, at most ``MAX_RESTARTS``). ``stop_after``:
    stop after that many new images (an interruption, for tests)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device here (torch {torch.__version__})")
    header = _header(loaded, items, settings)
    fh, done, dropped = None, [], Counter()
    if results is not None:
        fh, done, dropped = _open_results(Path(results), header, items)
    seen = {r["i"] for r in done}
    wanted = [i for i in (range(len(items)) if indices is None else indices) if i not in seen]
    records = list(done)
    started, new, restarts = time.perf_counter(), 0, 0
    try:
        if device != "cpu":
            loaded.model.to(device)
        while True:
            ran = {r["i"] for r in records}
            todo = [i for i in wanted if i not in ran]
            loader = DataLoader(torch.utils.data.Subset(items, todo), batch_size=batch, num_workers=workers,
                                collate_fn=_collate, shuffle=False, persistent_workers=False)
            try:
                for b in loader:
                    recs = _records(loaded, b, settings, device)
                    records += recs
                    new += len(recs)
                    if fh is not None:
                        fh.write("".join(json.dumps(r) + "\n" for r in recs))
                        fh.flush()
                    if progress:
                        progress(len(records), len(wanted) + len(done))
                    if stop_after is not None and new >= stop_after:
                        break
                break
            except RuntimeError as err:
                if not _worker_died(err):
                    raise
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise RuntimeError(f"DataLoader workers died {restarts} times ({err}); {len(records)} images are "
                                       f"done" + (f" and kept in {results}: rerun to resume" if results else "")
                                       ) from None
    finally:
        if fh is not None:
            fh.close()
        if device != "cpu":
            loaded.model.to("cpu")
    report = report_from(records, settings, loaded.id)
    report.update(seconds=time.perf_counter() - started, new_images=new, resumed_images=len(done),
                  dropped_records=dict(dropped), worker_restarts=restarts,
                  records=sorted(records, key=lambda r: r["i"]))
    return report


def run_ray(model_id: str, items, settings: Settings = Settings(), *, shards: int = 2, batch: int = 16,
            address: str | None = None, num_cpus: int | None = None, weights: str | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """The same protocol on Ray: one actor per shard loads the model once, each runs
    :func:`loc_pointing` on its share of the images (every ``shards``-th image), and the records
    are merged by image. A shard whose actor dies runs again on a new actor (``retried_shards``;
    at most ``MAX_RESTARTS`` times a shard). ``address``: an existing cluster (default: a local
    one started here)."""
    try:
        import ray
    except ImportError as err:
        raise ValueError("the Ray engine needs the optional package ray (pip install ray; it is in "
                         "requirements-dev.txt)") from err
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        @ray.remote(num_cpus=1)
        class Worker:
            def __init__(self, model_id_, weights_):
                import model_zoo
                torch.set_num_threads(1)
                self.loaded = model_zoo.load(model_id_, weights_)

            def run(self, items_, settings_, indices_, batch_):
                return loc_pointing(self.loaded, items_, settings_, batch=batch_, indices=indices_)["records"]

        ref = ray.put(items)
        t0 = time.perf_counter()
        share = {k: list(range(k, len(items), shards)) for k in range(shards)}

        def start(k):
            worker = Worker.remote(model_id, weights)
            return worker, worker.run.remote(ref, settings, share[k], batch)

        running = {k: start(k) for k in range(shards)}
        by_ref = {job: k for k, (_, job) in running.items()}
        records, retried, tries = [], 0, Counter()
        while by_ref:
            ready, _ = ray.wait(list(by_ref), num_returns=1)
            k = by_ref.pop(ready[0])
            try:
                records += ray.get(ready[0])
            except ray.exceptions.RayActorError as err:  # the actor's process died: its shard runs again
                tries[k] += 1
                if tries[k] > MAX_RESTARTS:
                    raise RuntimeError(f"shard {k + 1} of {shards}: its actor died {tries[k]} times; the last: "
                                       f"{str(err).splitlines()[0]}") from None
                retried += 1
                running[k] = start(k)
                by_ref[running[k][1]] = k
                continue
            if progress:
                progress(shards - len(by_ref), shards)
        seconds = time.perf_counter() - t0
    finally:
        if started_here:
            ray.shutdown()
    report = report_from(records, settings, model_id)
    report.update(seconds=seconds, engine="ray", shards=shards, retried_shards=retried,
                  records=sorted(records, key=lambda r: r["i"]))
    return report
