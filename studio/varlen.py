"""Attention for packed rows with no compile step: PyTorch's variable-length flash kernel
(`torch.nn.attention.varlen.varlen_attn`), registered with transformers as `studio_varlen`.

Flex attention keeps packed sequences apart too, but it is compiled on first use (and again when the
packed length changes): on a fresh machine the first 8B LoRA step came 71 s after training started.
The varlen kernel is precompiled in torch, takes the packed row as it is (cumulative sequence starts
from the position_ids TRL's padding-free collator writes), and never attends across a boundary.
Padded batches (DPO) are un-padded from their attention mask, so pad tokens cost no attention.

`available()` runs a tiny forward and backward once per process (the varlen API has changed between
torch releases: causal flag vs window, GQA flag or not); where it fails, the fast path uses flex.
"""

from __future__ import annotations

import functools
import inspect
import logging

NAME = "studio_varlen"
log = logging.getLogger("studio.perf")
_LAST: tuple = (None, None)  # (position_ids tensor, (cu_seqlens, max_len)): one computation per forward, not per layer


def _kernel():
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    return varlen_attn, "enable_gqa" in params, "is_causal" in params, "window_size" in params, "scale" in params


def varlen(q, k, v, cu, max_len: int, *, causal: bool = True, scale: float | None = None):
    """q (T, H, D), k/v (T, Hkv, D), cu (N+1,) int32 sequence starts: attention within each sequence."""
    fn, gqa, has_causal, has_window, has_scale = _kernel()
    kwargs = {}
    if k.shape[1] != q.shape[1]:
        if gqa:
            kwargs["enable_gqa"] = True
        else:  # older torch: repeat the key/value heads
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    if causal:
        if has_causal:
            kwargs["is_causal"] = True
        elif has_window:
            kwargs["window_size"] = (-1, 0)
        else:
            raise RuntimeError("this torch's varlen_attn has no causal mode")
    if scale is not None and has_scale:
        kwargs["scale"] = scale
    elif scale is not None and abs(scale - q.shape[-1] ** -0.5) > 1e-6:
        raise RuntimeError("this torch's varlen_attn takes no scale")
    return fn(q, k, v, cu, cu, max_len, max_len, **kwargs)


def sequence_starts(position_ids):
    """Cumulative sequence starts (int32) and the longest sequence, from packed position_ids (0 starts a
    sequence). Cached for the tensor of the current forward: every layer gets the same one."""
    global _LAST
    import torch

    if _LAST[0] is position_ids:
        return _LAST[1]
    flat = position_ids.reshape(-1)
    starts = torch.nonzero(flat == 0).reshape(-1)
    if starts.numel() == 0 or int(starts[0]) != 0:
        starts = torch.cat([starts.new_zeros(1), starts])
    cu = torch.cat([starts, starts.new_tensor([flat.numel()])]).to(torch.int32)
    result = (cu, int((cu[1:] - cu[:-1]).max()))
    _LAST = (position_ids, result)
    return result


def padding_segments(attention_mask):
    """For a padded batch (2D mask, each row's tokens contiguous): the kept token indices, the
    cumulative sequence starts and the longest row. Cached like `sequence_starts`."""
    global _LAST
    import torch

    if _LAST[0] is attention_mask:
        return _LAST[1]
    keep = attention_mask.reshape(-1).nonzero().reshape(-1)
    lengths = attention_mask.sum(-1, dtype=torch.int32)
    cu = torch.nn.functional.pad(lengths.cumsum(0, dtype=torch.int32), (1, 0))
    result = (keep, cu, int(lengths.max()))
    _LAST = (attention_mask, result)
    return result


def attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, position_ids=None, **kwargs):
    """transformers' attention interface: query (B, H, S, D), key/value (B, Hkv, S, D) -> ((B, S, H, D), None)."""
    import torch

    batch, heads, length, dim = query.shape
    causal = getattr(module, "is_causal", True)
    q = query.transpose(1, 2)
    k = key.transpose(1, 2)
    v = value.transpose(1, 2)
    if attention_mask is not None and attention_mask.dim() == 2:
        keep, cu, longest = padding_segments(attention_mask)
        out = varlen(q.reshape(-1, heads, dim)[keep], k.reshape(batch * length, -1, dim)[keep], v.reshape(batch * length, -1, dim)[keep],
                     cu, longest, causal=causal, scale=scaling)
        full = out.new_zeros(batch * length, heads, dim)
        full[keep] = out
        return full.view(batch, length, heads, dim), None
    if position_ids is None:
        position_ids = torch.arange(length, device=query.device).expand(batch, length)
    elif position_ids.shape[0] != batch:
        position_ids = position_ids.expand(batch, -1)
    cu, longest = sequence_starts(position_ids)
    out = varlen(q.reshape(batch * length, heads, dim), k.reshape(batch * length, -1, dim), v.reshape(batch * length, -1, dim),
                 cu, longest, causal=causal, scale=scaling)
    return out.view(batch, length, heads, dim), None


def register() -> str:
    """Make `studio_varlen` an attention implementation transformers knows (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    AttentionInterface.register(NAME, attention_forward)
    AttentionMaskInterface.register(NAME, flash_attention_mask)  # None, or the 2D padding mask: un-padded above
    return NAME


@functools.cache
def available() -> bool:
    """True when the varlen kernel runs here, forward and backward, and matches plain attention."""
    try:
        import torch

        if not torch.cuda.is_available():
            return False
        gen = torch.Generator(device="cuda").manual_seed(0)
        lengths = [5, 11]
        q = torch.randn(sum(lengths), 4, 64, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
        k = torch.randn(sum(lengths), 2, 64, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
        v = torch.randn(sum(lengths), 2, 64, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
        cu = torch.tensor([0, 5, 16], device="cuda", dtype=torch.int32)
        out = varlen(q, k, v, cu, max(lengths), scale=64**-0.5)
        out.float().sum().backward()
        reference = []
        for start, n in zip([0, 5], lengths):
            qs, ks, vs = (t[start:start + n].transpose(0, 1).float() for t in (q, k, v))
            reference.append(torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, is_causal=True, enable_gqa=True).transpose(0, 1))
        error = ((out.float() - torch.cat(reference)).norm() / torch.cat(reference).norm()).item()
        if not error < 2e-2 or q.grad is None or not torch.isfinite(q.grad).all():
            raise RuntimeError(f"varlen attention differs from plain attention (relative error {error:.3g})")
        return True
    except Exception as err:  # any API or kernel mismatch: the fast path falls back to flex attention
        log.info(f"varlen attention unavailable here ({type(err).__name__}: {str(err)[:200]}); using flex attention")
        return False
