"""The local web demo of ``tools/app.py``: drop an image, type class names or a caption, see the boxes.

:class:`WebDemo` is the request handling, with no web framework: it reads the image (``data/image_io``), builds
the prompt the way the :class:`~maskrcnn_benchmark.engine.predictor.Predictor` does (a class list is chunked
when it is long; a caption's phrases come from ``|``-separated phrases, ``start-end`` character spans or the
default split at ``.``, ``,`` and ``;``), runs the Predictor it was given (the model is loaded once, by the
caller), draws the detections as ``tools/demo.py`` does (``utils/visualizer``), and returns the picture, a
table and a JSON file. Bad input (no image, a file that is not an image, an empty or too long prompt, a
threshold outside 0..1) gives a one-line message instead of a traceback.

:func:`build_page` lays the page out with Gradio and :func:`launch` serves it; they are the only places that
import Gradio (``pip install -e ".[app]"``). The page runs offline: analytics off, no share link, the
default theme's fonts are served by the local server, and it binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WebDemo", "DemoResult", "TABLE_HEADERS", "MODES", "parse_class_list", "parse_phrases", "build_page",
           "launch", "import_gradio"]

logger = logging.getLogger(__name__)

#: Columns of the detections table (boxes in the uploaded image's pixels, x1 y1 x2 y2).
TABLE_HEADERS = ("#", "name", "label", "score", "x1", "y1", "x2", "y2")
#: The two kinds of prompt.
MODES = ("class names", "caption")
_SPAN = re.compile(r"^(\d+)\s*[-:]\s*(\d+)$")
_CLASS_SEPARATORS = re.compile(r"[,\n]")
# Environment that keeps Gradio offline and quiet (set before it is imported, unless the user set them).
_OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                "GRADIO_SSR_MODE": "False"}


def parse_class_list(text: str) -> list[str]:
    """Class names separated by commas or new lines (surrounding spaces and empty names dropped)."""
    return [name.strip() for name in _CLASS_SEPARATORS.split(text or "") if name.strip()]


def parse_phrases(text: str) -> tuple[list[tuple[int, int]] | None, list[str] | None]:
    """``(spans, phrases)`` of a caption from ``|``-separated items: all ``start-end`` spans or all phrases.

    Returns ``(None, None)`` for an empty text (the Predictor's default split rule applies).

    Raises:
        ValueError: spans mixed with phrases.
    """
    items = [item.strip() for item in (text or "").split("|") if item.strip()]
    if not items:
        return None, None
    spans = [_SPAN.match(item) for item in items]
    if all(spans):
        return [(int(m.group(1)), int(m.group(2))) for m in spans], None
    if any(spans):
        raise ValueError("give either phrases ('red square | blue circle') or character spans ('2-12 | 18-29'), "
                         "not both")
    return None, items


@dataclass
class DemoResult:
    """What one request returns.

    Attributes:
        picture: the image with boxes, labels and scores (``PIL.Image``), None on an error.
        rows: the table, one row per detection (see :data:`TABLE_HEADERS`), best score first.
        json_path: the detections as a JSON file (None on an error).
        message: one line for the status box (the error, or a summary).
        ok: whether detection ran.
    """

    picture: Any
    rows: list[list[Any]] = field(default_factory=list)
    json_path: str | None = None
    message: str = ""
    ok: bool = True


class WebDemo:
    """Request handling of the web demo around one loaded :class:`Predictor`.

    Args:
        predictor: the Predictor (PyTorch or onnxruntime back end), built once by the caller.
        threshold: the page's default score threshold.
        max_classes: the most class names one request may give (each chunk of the list is a forward pass).
        max_characters: the longest prompt text accepted.
        output_dir: where the JSON files go (default: a new temporary folder).
    """

    def __init__(self, predictor, threshold: float = 0.5, max_classes: int = 1500, max_characters: int = 20000,
                 output_dir: str | None = None):
        self.predictor = predictor
        self.threshold = float(threshold)
        self.max_classes = int(max_classes)
        self.max_characters = int(max_characters)
        self.output_dir = output_dir or tempfile.mkdtemp(prefix="fiber_app_")

    def prompt(self, mode: str, classes_text: str, caption: str, phrases_text: str
               ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """``(prompt, predict keyword arguments, JSON description)`` of the request's prompt.

        Raises:
            ValueError: an unknown mode, an empty or too long prompt, or bad phrases (the message says which).
        """
        if mode not in MODES:
            raise ValueError(f"unknown prompt kind {mode!r}; choose one of {MODES}")
        text = classes_text if mode == MODES[0] else caption
        if len(text or "") > self.max_characters:
            raise ValueError(f"the prompt is too long: {len(text)} characters, at most {self.max_characters}")
        if mode == MODES[0]:
            names = parse_class_list(classes_text)
            if not names:
                raise ValueError("the class list is empty: type class names separated by commas")
            if len(names) > self.max_classes:
                raise ValueError(f"the class list is too long: {len(names)} names, at most {self.max_classes}")
            return names, {}, {"classes": names}
        if not (caption or "").strip():
            raise ValueError("the caption is empty: type a caption (or switch to class names)")
        spans, phrases = parse_phrases(phrases_text)
        info: dict[str, Any] = {"caption": caption}
        if spans is not None:
            info["spans"] = spans
        if phrases is not None:
            info["phrases"] = phrases
        return caption, {"spans": spans, "phrases": phrases}, info

    @staticmethod
    def _read(image: Any):
        from maskrcnn_benchmark.data.image_io import load_image

        if image is None or (isinstance(image, str) and not image):
            raise ValueError("no image: upload one or pick an example")
        if isinstance(image, str):
            return load_image(image)[0], os.path.basename(image)
        return load_image(image, rgb=True)[0], ""

    def run(self, image: Any, mode: str, classes_text: str = "", caption: str = "", phrases_text: str = "",
            threshold: float | None = None) -> DemoResult:
        """Detect the prompt in the image.

        Args:
            image: a file path (what the page uploads), an ``H x W x 3`` RGB uint8 array or a PIL image.
            mode: one of :data:`MODES`.
            classes_text: class names, comma or line separated (``mode="class names"``).
            caption, phrases_text: the caption and its optional phrases / spans (``mode="caption"``).
            threshold: keep detections with a score >= threshold (default: the page's).

        Returns:
            :class:`DemoResult` (``ok=False`` and a message for bad input).
        """
        from maskrcnn_benchmark.data.image_io import ImageReadError

        threshold = self.threshold if threshold is None else float(threshold)
        try:
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"the score threshold must lie in 0..1, got {threshold}")
            picture, source = self._read(image)
            prompt, kwargs, info = self.prompt(mode, classes_text, caption, phrases_text)
            start = time.perf_counter()
            detections = self.predictor.predict(picture, prompt, threshold=threshold, **kwargs)
            seconds = time.perf_counter() - start
        except (ValueError, ImageReadError, FileNotFoundError, TypeError) as error:
            logger.info("request refused: %s", error)
            return DemoResult(None, [], None, f"Error: {error}", ok=False)
        detections.source = source
        return self._result(picture, detections, info, threshold, seconds)

    def _result(self, picture, detections, info: dict[str, Any], threshold: float, seconds: float) -> DemoResult:
        from maskrcnn_benchmark.utils.atomic_io import atomic_write_json
        from maskrcnn_benchmark.utils.visualizer import draw_detections

        rows = [[index + 1, name, int(label), round(float(score), 3), *[round(float(v), 1) for v in box]]
                for index, (box, score, label, name) in enumerate(zip(detections.boxes.tolist(),
                                                                      detections.scores.tolist(),
                                                                      detections.labels.tolist(), detections.names))]
        record = {"prompt": info, "threshold": threshold, **detections.to_dict()}
        path = os.path.join(self.output_dir, uuid.uuid4().hex[:12], "detections.json")
        atomic_write_json(path, record, indent=1)
        names = sorted(set(detections.names))
        found = f": {', '.join(names)}" if names else ""
        message = f"{len(detections)} detection{'s' if len(detections) != 1 else ''} with score >= " \
                  f"{threshold:.2f}{found} ({seconds * 1000:.0f} ms)"
        return DemoResult(draw_detections(picture, detections), rows, path, message, ok=True)

    def handle(self, image, mode, classes_text, caption, phrases_text, threshold):
        """The page's callback: ``(picture, table rows, JSON path, status markdown)``."""
        result = self.run(image, mode, classes_text, caption, phrases_text, threshold)
        status = result.message if result.ok else f"**{result.message}**"
        return result.picture, result.rows, result.json_path, status


def import_gradio():
    """Import Gradio with analytics and telemetry off (environment set first, unless already set)."""
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import gradio
    except ImportError as e:
        raise ImportError('the web demo needs Gradio: pip install -e ".[app]"') from e
    return gradio


def _inputs(gr, threshold: float) -> dict[str, Any]:
    return {
        "image": gr.Image(type="filepath", label="image", sources=["upload"], elem_id="input-image", height=360),
        "mode": gr.Radio(list(MODES), value=MODES[0], label="prompt", elem_id="mode"),
        "classes": gr.Textbox(label="class names (comma or line separated)", lines=2, elem_id="classes",
                              placeholder="person, bicycle, car"),
        "caption": gr.Textbox(label="caption", lines=2, elem_id="caption",
                              placeholder="a man riding a bicycle. a red car"),
        "phrases": gr.Textbox(label="phrases of the caption (optional): 'man | red car' or spans '2-5 | 26-33'",
                              elem_id="phrases"),
        "threshold": gr.Slider(0.0, 1.0, value=threshold, step=0.01, label="score threshold", elem_id="threshold"),
    }


def build_page(demo: WebDemo, examples: Sequence[Sequence[Any]] = (), title: str = "FIBER: detect and ground"):
    """The Gradio page (``gr.Blocks``) of ``demo``.

    Args:
        demo: the request handler.
        examples: rows ``[image path, class names]`` shown under the inputs (a click fills both in).
        title: the page title.
    """
    gr = import_gradio()
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"## {title}\nUpload an image, type class names (or a caption), press **Detect**.")
        with gr.Row():
            with gr.Column():
                inputs = _inputs(gr, demo.threshold)
                submit = gr.Button("Detect", variant="primary", elem_id="detect")
            with gr.Column():
                status = gr.Markdown("", elem_id="status")
                picture = gr.Image(type="pil", format="png", label="detections", interactive=False,
                                   elem_id="output-image", height=360)
                table = gr.Dataframe(headers=list(TABLE_HEADERS), interactive=False, elem_id="table")
                download = gr.File(label="detections (JSON)", elem_id="json")
        ordered = [inputs[k] for k in ("image", "mode", "classes", "caption", "phrases", "threshold")]
        if examples:
            gr.Examples(examples=[list(row) for row in examples], inputs=[inputs["image"], inputs["classes"]],
                        label="examples")
        submit.click(demo.handle, inputs=ordered, outputs=[picture, table, download, status], api_name="detect",
                     concurrency_limit=1)
    return page


def launch(page, host: str = "127.0.0.1", port: int | None = None, block: bool = True, quiet: bool = False):
    """Serve ``page`` on ``host:port`` (no share link, no SSR, no monitoring or MCP endpoints).

    Returns Gradio's ``(app, local url, share url)``; with ``block=False`` the call returns while serving.
    """
    return page.launch(server_name=host, server_port=port, share=False, ssr_mode=False, pwa=False,
                       mcp_server=False, enable_monitoring=False, prevent_thread_lock=not block, quiet=quiet,
                       show_error=False, inbrowser=False)
