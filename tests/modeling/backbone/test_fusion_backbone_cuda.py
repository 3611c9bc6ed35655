"""CUDA checks of the fusion backbone: CPU/GPU agreement, mixed precision, and a full-size FIBER-B pass."""

import pytest
import torch

from tests.modeling.backbone.test_fusion_backbone import inputs, make_fusion, set_alphas

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _to(tok, device):
    return {k: v.to(device) for k, v in tok.items()}


@pytest.fixture
def no_tf32():
    """TF32 convolutions/matmuls (cuDNN's default) differ from fp32 CPU results by ~1e-3; turn them off."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_cuda_matches_cpu(no_tf32):
    torch.manual_seed(0)
    model = make_fusion().eval()
    set_alphas(model, image=0.5, text=0.5)
    tok, images = inputs()
    with torch.no_grad():
        cpu_feats, cpu_lang = model(tok, images)
        model.cuda()
        gpu_feats, gpu_lang = model(_to(tok, "cuda"), images.cuda())
    for a, b in zip(cpu_feats, gpu_feats):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu_lang["hidden"].cpu(), cpu_lang["hidden"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_forward_backward_is_finite_and_close(dtype):
    torch.manual_seed(0)
    model = make_fusion().cuda().train()
    set_alphas(model, image=0.5, text=0.5)
    tok, images = inputs()
    tok, images = _to(tok, "cuda"), images.cuda()
    model.eval()
    with torch.no_grad():
        ref_feats, ref_lang = model(tok, images)
        with torch.autocast("cuda", dtype=dtype):
            feats, lang = model(tok, images)
    for a, b in zip(ref_feats, feats):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(b.float(), a, rtol=0.05, atol=0.05)
    assert torch.isfinite(lang["hidden"]).all()
    model.train()
    with torch.autocast("cuda", dtype=dtype):
        feats, lang = model(tok, images)
        loss = sum(f.float().square().mean() for f in feats) + lang["hidden"].float().square().mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
def test_full_size_fiber_b_forward_fp16():
    torch.manual_seed(0)
    model = make_fusion(embed_dim=128, depths=(2, 2, 18, 2), heads=(4, 8, 16, 32), window=12, text_dim=768,
                        text_layers=12, text_heads=12, ffn=3072, fused3=4, vocab=50265, fpn_out=256,
                        drop_path=0.4).cuda().eval()
    set_alphas(model, image=0.1, text=0.1)
    ids = torch.randint(4, 50000, (1, 256), device="cuda")
    ids[0, 0] = 0
    ids[0, 200] = 2
    ids[0, 201:] = 1
    mask = (ids != 1).long()
    images = torch.randn(1, 3, 800, 1216, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        feats, lang = model({"input_ids": ids, "attention_mask": mask}, images)
    assert [tuple(f.shape[-2:]) for f in feats] == [(100, 152), (50, 76), (25, 38), (13, 19), (7, 10)]
    assert all(torch.isfinite(f).all() for f in feats) and torch.isfinite(lang["hidden"]).all()
