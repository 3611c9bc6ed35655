"""Constants and helpers of the ONNX export tests."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny" / "fiber_tiny.yaml"
#: The canvas of the test export (height, width): every test image fits after the tiny test transforms.
CANVAS = (160, 224)


def tiny_opts(tokenizer_dir):
    # A random-initialised model scores every token near the prior: INFERENCE_TH 0 keeps candidates.
    return ["MODEL.LANGUAGE_BACKBONE.TOKENIZER_TYPE", str(tokenizer_dir), "MODEL.ATSS.INFERENCE_TH", "0.0"]


def spread_scores(model):
    """Give a random-initialised head scores spread over (0, 1) instead of all near the 0.01 prior, so that the
    ranking of detections is decided by gaps far larger than float32 noise."""
    import torch

    head = model.rpn.head
    with torch.no_grad():
        head.bias0.zero_()
        torch.nn.init.normal_(head.dot_product_projection_text.weight, std=0.5)
        torch.nn.init.normal_(head.centerness.weight, std=0.2)
    return model


def assert_same_detections(got, want, score_atol=1e-4, box_atol=1e-2):
    """Same detections (label, box, score within tolerances), matched one to one whatever the order of ties."""
    assert got.scores.shape[0] == want.scores.shape[0] > 0
    free = list(range(got.scores.shape[0]))
    for box, score, label in zip(want.boxes.tolist(), want.scores.tolist(), want.labels.tolist()):
        match = next((j for j in free if int(got.labels[j]) == label and abs(float(got.scores[j]) - score) <= score_atol
                      and max(abs(a - b) for a, b in zip(got.boxes[j].tolist(), box)) <= box_atol), None)
        assert match is not None, f"no match for label {label} score {score:.6f} box {box}"
        free.remove(match)
