#!/usr/bin/env python3
"""Writes small GGUF files for the gguf fuzz target's corpus: usage make_gguf_seeds.py OUT_DIR.

The real GGUF files in ../shared are 0.7-25 MB, so a fuzzer that starts from them parses a
32000-piece vocabulary or a megabyte of tensors per input (150-350 inputs/s). These seeds are a
few kilobytes each and load like the real ones: a llama with a SentencePiece vocabulary of the
256 byte pieces plus a few words, in f32, f16 (tied embeddings, two layers) and Q8_0, and a qwen2
with a gpt2 (byte-level BPE) vocabulary and merges. Weights are deterministic pseudo-random values.
"""
import os
import random
import struct
import sys

GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
ALIGN = 32


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_value(vtype, v):
    if vtype == U32:
        return struct.pack("<I", v)
    if vtype == I32:
        return struct.pack("<i", v)
    if vtype == F32:
        return struct.pack("<f", v)
    if vtype == BOOL:
        return struct.pack("<?", v)
    if vtype == STRING:
        return gguf_string(v)
    etype, items = v
    return struct.pack("<IQ", etype, len(items)) + b"".join(gguf_value(etype, x) for x in items)


def tensor_bytes(values, ggml_type):
    if ggml_type == GGML_F32:
        return struct.pack("<%df" % len(values), *values)
    if ggml_type == GGML_F16:
        return struct.pack("<%de" % len(values), *values)
    out = b""  # Q8_0: blocks of 32 int8 values with an f16 scale first
    for b0 in range(0, len(values), 32):
        block = values[b0:b0 + 32]
        d = max(abs(x) for x in block) / 127.0
        inv = 1.0 / d if d else 0.0
        out += struct.pack("<e", d) + struct.pack("<32b", *[max(-127, min(127, round(x * inv))) for x in block])
    return out


def write_gguf(path, metadata, tensors):
    """metadata: [(key, type, value)]; tensors: [(name, dims (ggml order), ggml type, values)]."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, vtype, value in metadata:
        head += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)
    data = b""
    for name, dims, ggml_type, values in tensors:
        head += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", ggml_type, len(data))
        data += tensor_bytes(values, ggml_type)
        data += b"\0" * (-len(data) % ALIGN)
    head += b"\0" * (-len(head) % ALIGN)
    with open(path, "wb") as f:
        f.write(head + data)


def spm_vocab():
    words = ["\u2581", "\u2581a", "\u2581the", "\u2581Once", "\u2581upon", "\u2581time", "e", "t", "o", "n",
             "\u2581was", "\u2581little", "er", "in", "\u2581girl"]
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + words
    types = [2, 3, 3] + [6] * 256 + [1] * len(words)
    scores = [0.0] * 259 + [-float(i) for i in range(len(words))]
    return [("tokenizer.ggml.model", STRING, "llama"),
            ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
            ("tokenizer.ggml.scores", ARRAY, (F32, scores)),
            ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
            ("tokenizer.ggml.bos_token_id", U32, 1),
            ("tokenizer.ggml.eos_token_id", U32, 2),
            ("tokenizer.ggml.unknown_token_id", U32, 0)], len(tokens)


def bpe_vocab():
    # GPT-2's byte-to-unicode map: printable bytes stand for themselves, the others shift past 255.
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, shift = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + shift)
            shift += 1
    space = chars[32]
    merges = [space + " t", "h e", space + "t he", "i n", space + " a", "o n", "e r"]
    merged = [m.replace(" ", "") for m in merges]
    tokens = [chars[b] for b in range(256)] + merged + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * (len(tokens) - 3) + [3, 3, 3]
    return [("tokenizer.ggml.model", STRING, "gpt2"),
            ("tokenizer.ggml.pre", STRING, "qwen2"),
            ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
            ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
            ("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
            ("tokenizer.ggml.eos_token_id", U32, len(tokens) - 3),
            ("tokenizer.ggml.add_bos_token", BOOL, False),
            ("tokenizer.chat_template", STRING,
             "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")], len(tokens)


def model(path, arch, vocab, dim, heads, kv_heads, ffn, layers, wtype, tied, biases=False, seed=1):
    rng = random.Random(seed)
    tok_meta, n_vocab = vocab
    head_dim = dim // heads

    def rand(n):
        return [rng.uniform(-0.5, 0.5) for _ in range(n)]

    meta = [("general.architecture", STRING, arch), ("general.name", STRING, os.path.basename(path))]
    meta += [(arch + ".context_length", U32, 128), (arch + ".embedding_length", U32, dim),
             (arch + ".feed_forward_length", U32, ffn), (arch + ".attention.head_count", U32, heads),
             (arch + ".attention.head_count_kv", U32, kv_heads), (arch + ".block_count", U32, layers),
             (arch + ".rope.dimension_count", U32, head_dim), (arch + ".rope.freq_base", F32, 10000.0),
             (arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5)]
    meta += tok_meta
    norm = [1.0] * dim
    tensors = [("token_embd.weight", [dim, n_vocab], wtype, rand(dim * n_vocab)),
               ("output_norm.weight", [dim], GGML_F32, norm)]
    if not tied:
        tensors.append(("output.weight", [dim, n_vocab], wtype, rand(dim * n_vocab)))
    kv_dim = kv_heads * head_dim
    for i in range(layers):
        b = "blk.%d." % i
        tensors += [(b + "attn_q.weight", [dim, dim], wtype, rand(dim * dim)),
                    (b + "attn_k.weight", [dim, kv_dim], wtype, rand(dim * kv_dim)),
                    (b + "attn_v.weight", [dim, kv_dim], wtype, rand(dim * kv_dim)),
                    (b + "attn_output.weight", [dim, dim], wtype, rand(dim * dim)),
                    (b + "attn_norm.weight", [dim], GGML_F32, norm),
                    (b + "ffn_gate.weight", [dim, ffn], wtype, rand(dim * ffn)),
                    (b + "ffn_down.weight", [ffn, dim], wtype, rand(ffn * dim)),
                    (b + "ffn_up.weight", [dim, ffn], wtype, rand(dim * ffn)),
                    (b + "ffn_norm.weight", [dim], GGML_F32, norm)]
        if biases:
            tensors += [(b + "attn_q.bias", [dim], GGML_F32, rand(dim)),
                        (b + "attn_k.bias", [kv_dim], GGML_F32, rand(kv_dim)),
                        (b + "attn_v.bias", [kv_dim], GGML_F32, rand(kv_dim))]
    write_gguf(path, meta, tensors)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_gguf_seeds.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    model(os.path.join(out, "tiny-llama-f32.gguf"), "llama", spm_vocab(), 16, 2, 1, 32, 1, GGML_F32, tied=False)
    model(os.path.join(out, "tiny-llama-f16-tied.gguf"), "llama", spm_vocab(), 16, 4, 2, 32, 2, GGML_F16, tied=True,
          seed=2)
    model(os.path.join(out, "tiny-llama-q8_0.gguf"), "llama", spm_vocab(), 32, 4, 2, 64, 1, GGML_Q8_0, tied=False,
          seed=3)
    model(os.path.join(out, "tiny-qwen2-f32.gguf"), "qwen2", bpe_vocab(), 16, 2, 1, 32, 1, GGML_F32, tied=True,
          biases=True, seed=4)


if __name__ == "__main__":
    main()
