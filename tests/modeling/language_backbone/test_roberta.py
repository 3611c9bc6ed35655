import pytest
import torch

from maskrcnn_benchmark.modeling.language_backbone.roberta import (
    RobertaArch,
    RobertaFusedEncoder,
    RobertaLayer,
    RobertaModel,
    aggregate_language_features,
    create_position_ids,
    extended_attention_mask,
)

ARCH = dict(vocab_size=300, hidden_size=32, num_layers=4, num_heads=2, intermediate_size=64,
            max_position_embeddings=40, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1)


def tiny_model(fusion_kv_dims=None, seed=0):
    torch.manual_seed(seed)
    model = RobertaModel(RobertaArch(**ARCH, fusion_kv_dims=fusion_kv_dims or {}))
    # random LayerNorm affine params so a wrong LayerNorm placement cannot go unnoticed
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.2, 0.2)
    return model.eval()


def batch():
    torch.manual_seed(3)
    ids = torch.randint(4, ARCH["vocab_size"], (3, 9))
    ids[:, 0] = 0
    ids[1, 6:] = 1  # padding
    ids[2, 4:] = 1
    ids[1, 5] = ids[2, 3] = 2
    return ids, (ids != 1).long()


def hf_reference(model):
    transformers = pytest.importorskip("transformers")
    config = transformers.RobertaConfig(
        vocab_size=ARCH["vocab_size"], hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=40, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
        hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    config._attn_implementation = "eager"
    hf = transformers.RobertaModel(config, add_pooling_layer=False).eval()
    ours = {k: v for k, v in model.state_dict().items() if "t2i" not in k}
    missing, unexpected = hf.load_state_dict(ours, strict=False)
    assert set(unexpected) <= {"embeddings.position_ids"}  # a non-persistent buffer in recent transformers
    assert all(k.endswith(("position_ids", "token_type_ids")) for k in missing), missing
    return hf


def test_position_ids_follow_roberta_rule():
    ids = torch.tensor([[0, 5, 6, 2, 1, 1], [0, 7, 2, 1, 1, 1]])
    assert create_position_ids(ids, 1).tolist() == [[2, 3, 4, 5, 1, 1], [2, 3, 4, 1, 1, 1]]


def test_extended_mask():
    mask = extended_attention_mask(torch.tensor([[1, 1, 0]]))
    assert mask.shape == (1, 1, 1, 3)
    assert mask[0, 0, 0, :2].tolist() == [0.0, 0.0] and mask[0, 0, 0, 2] == torch.finfo(torch.float32).min


def test_matches_hf_roberta():
    model = tiny_model()
    hf = hf_reference(model)
    ids, mask = batch()
    with torch.no_grad():
        ours = model(ids, mask)
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    torch.testing.assert_close(ours[valid], ref[valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_fused_layers_with_zero_alpha_match_hf_roberta():
    model = tiny_model(fusion_kv_dims={2: 24, 3: 48})
    hf = hf_reference(model)
    ids, mask = batch()
    images = {2: torch.randn(3, 20, 24), 3: torch.randn(3, 5, 48)}
    with torch.no_grad():
        ours = model(ids, mask, image_tokens=images)
        ref = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_cross_attention_layer_computation():
    torch.manual_seed(0)
    arch = RobertaArch(**ARCH, fusion_kv_dims={0: 12})
    layer = RobertaLayer(arch, kv_dim=12).eval()
    assert isinstance(layer.crossattention_t2i.output.LayerNorm, torch.nn.Identity)
    with torch.no_grad():
        layer.alpha_t2i.fill_(0.5)
    h = torch.randn(2, 6, 32)
    image = torch.randn(2, 7, 12)
    key_mask = extended_attention_mask(torch.tensor([[1] * 6, [1] * 4 + [0] * 2]))

    def attend(q_in, kv_in, attn, mask):
        sa = attn.self
        q = sa.query(q_in).view(2, -1, 2, 16).transpose(1, 2)
        k = sa.key(kv_in).view(2, -1, 2, 16).transpose(1, 2)
        v = sa.value(kv_in).view(2, -1, 2, 16).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / 4.0
        if mask is not None:
            logits = logits + mask
        return attn.output.dense((logits.softmax(-1) @ v).transpose(1, 2).reshape(2, -1, 32))

    a = attend(h, h, layer.attention, key_mask)
    a = a + 0.5 * attend(a, image, layer.crossattention_t2i, None)  # query = raw self-attention output
    a = layer.attention.output.LayerNorm(a + h)
    expected = layer.output.LayerNorm(layer.output.dense(torch.nn.functional.gelu(layer.intermediate.dense(a))) + a)
    with torch.no_grad():
        torch.testing.assert_close(layer(h, key_mask, image), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="without crossattention_t2i"):
        RobertaLayer(arch)(h, key_mask, image)


def test_state_dict_names_and_shapes():
    model = tiny_model(fusion_kv_dims={2: 24, 3: 48})
    sd = model.state_dict()
    assert sd["embeddings.position_ids"].shape == (1, 40) and sd["embeddings.position_ids"].dtype == torch.int64
    assert sd["encoder.layer.2.crossattention_t2i.self.key.weight"].shape == (32, 24)
    assert sd["encoder.layer.3.crossattention_t2i.self.value.weight"].shape == (32, 48)
    assert sd["encoder.layer.3.alpha_t2i"].shape == (1,)
    assert not any(k.startswith("encoder.layer.1.crossattention") for k in sd)
    assert not any("crossattention_t2i.output.LayerNorm" in k for k in sd)
    assert "encoder.layer.0.attention.output.LayerNorm.weight" in sd
    assert not any("pooler" in k for k in sd)


def test_language_dict_and_too_long_text():
    torch.manual_seed(0)
    encoder = RobertaFusedEncoder(RobertaArch(**ARCH)).eval()
    ids, mask = batch()
    out = encoder({"input_ids": ids, "attention_mask": mask})
    assert set(out) == {"hidden", "embedded", "masks", "aggregate"}
    assert torch.equal(out["embedded"][1, 6:], torch.zeros(3, 32))
    torch.testing.assert_close(out["aggregate"][2], out["hidden"][2, :4].mean(0))
    assert out["masks"] is mask
    with pytest.raises(ValueError, match="supported positions"):
        encoder.model(torch.full((1, 39), 5))
    agg = aggregate_language_features(out["hidden"], mask)
    torch.testing.assert_close(agg["aggregate"], out["aggregate"])


def test_gradient_checkpointing_matches_plain_in_training():
    ids, mask = batch()
    grads, outs = [], []
    for use_checkpoint in (False, True):
        model = tiny_model(fusion_kv_dims={3: 12})
        model.use_checkpoint = use_checkpoint
        model.train()
        torch.manual_seed(11)  # same dropout draws (checkpointing replays the RNG state)
        out = model(ids, mask, image_tokens={3: torch.ones(3, 4, 12)})
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(outs[0], outs[1])
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6)
