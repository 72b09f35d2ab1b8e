#!/usr/bin/env python3
"""Build the text-model test fixtures and their Python reference outputs.

Nothing comes from a hub: the WordPiece vocabulary is trained here, with the
`tokenizers` package, on the committed corpus models/tokenizer/testdata/corpus.jsonl
(one JSON string per line), and the two tiny BERT-shaped models get seeded
random weights and real BERT ops (word, position and token-type embeddings,
layer norm, multi-head self-attention with the padding mask, GELU (erf) feed
forward, residuals), written with the `onnx` package at opset 17:

  bert_seq.onnx   sequence classification: logits [N, 3] from the pooled [CLS]
  bert_tok.onnx   token classification (NER): logits [N, T, 5], labels
                  O, B-PER, I-PER, B-LOC, I-LOC

Inputs of both: input_ids, attention_mask, token_type_ids (int64 [N, T]).

Reference outputs, which the Go tests compare against:
  tokenizer_golden.jsonl  per corpus line: ids (truncated to 64, with [CLS]
                          and [SEP]) and the byte offsets of each token
  logits_golden.json      ONNX Runtime's logits of both models on the corpus
                          in batches of 16, each padded to its longest row

Usage: make_text_models.py OUT_DIR
Versions used (scripts/setup-textmodel.sh pins them): tokenizers 0.23.3,
onnx 1.23.2, onnxruntime 1.29.0, numpy 2.4.6.
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import BertWordPieceTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "models", "tokenizer", "testdata", "corpus.jsonl")
MAX_LEN = 64
BATCH = 16
HIDDEN, HEADS, LAYERS, FFN, MAX_POS = 32, 2, 2, 64, 128
SEQ_CLASSES = 3
TOK_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def load_corpus():
    with open(CORPUS, "rb") as f:
        raw = f.read()
    lines = [json.loads(l) for l in raw.decode("utf-8").splitlines()]
    return lines, hashlib.sha256(raw).hexdigest()


def train_tokenizer(lines, out):
    tok = BertWordPieceTokenizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    tok.train_from_iterator(lines, vocab_size=1500, min_frequency=2, show_progress=False,
                            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    from tokenizers.processors import BertProcessing
    tok.post_processor = BertProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    return path


def byte_offsets(text, offsets):
    """Character offsets → UTF-8 byte offsets."""
    pos = [0]
    for ch in text:
        pos.append(pos[-1] + len(ch.encode("utf-8")))
    return [[pos[a], pos[b]] for a, b in offsets]


def golden_tokens(tok_path, lines, sha, out):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    tok.enable_truncation(MAX_LEN)
    with open(os.path.join(out, "tokenizer_golden.jsonl"), "w") as f:
        f.write(json.dumps({"corpus_sha256": sha, "max_length": MAX_LEN}) + "\n")
        for text in lines:
            e = tok.encode(text)
            offs = byte_offsets(text, e.offsets)
            specials = e.special_tokens_mask
            offs = [[-1, -1] if s else o for o, s in zip(offs, specials)]
            f.write(json.dumps({"ids": e.ids, "offsets": offs}) + "\n")
    return tok


class Graph:
    def __init__(self, rng):
        self.rng, self.nodes, self.inits, self.n = rng, [], [], 0

    def name(self, p):
        self.n += 1
        return f"{p}_{self.n}"

    def weight(self, p, shape, scale=0.1):
        n = self.name(p)
        self.inits.append(numpy_helper.from_array((self.rng.standard_normal(shape) * scale).astype(np.float32), n))
        return n

    def const(self, p, arr):
        n = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def op(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def layer_norm(self, x):
        g = self.const("ln_g", (1 + 0.1 * self.rng.standard_normal(HIDDEN)).astype(np.float32))
        b = self.weight("ln_b", [HIDDEN])
        return self.op("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-12)

    def dense(self, x, n_in, n_out):
        return self.op("Add", [self.op("MatMul", [x, self.weight("w", [n_in, n_out], 1 / np.sqrt(n_in))]), self.weight("b", [n_out])])

    def gelu(self, x):
        inner = self.op("Erf", [self.op("Div", [x, self.const("sqrt2", np.array(np.sqrt(2.0), np.float32))])])
        one_plus = self.op("Add", [inner, self.const("one", np.array(1.0, np.float32))])
        return self.op("Mul", [self.op("Mul", [x, one_plus]), self.const("half", np.array(0.5, np.float32))])


def build_bert(vocab_size, task, seed):
    rng = np.random.default_rng(seed)
    g = Graph(rng)
    head = HIDDEN // HEADS
    ids, mask, types = "input_ids", "attention_mask", "token_type_ids"
    # Embeddings: word + position + token type, then layer norm.
    word = g.op("Gather", [g.weight("word_emb", [vocab_size, HIDDEN], 0.5), ids], axis=0)
    seq_len = g.op("Gather", [g.op("Shape", [ids]), g.const("one_i", np.array(1, np.int64))], axis=0)
    positions = g.op("Range", [g.const("zero_i", np.array(0, np.int64)), seq_len, g.const("step", np.array(1, np.int64))])
    pos = g.op("Gather", [g.weight("pos_emb", [MAX_POS, HIDDEN], 0.5), positions], axis=0)
    typ = g.op("Gather", [g.weight("type_emb", [2, HIDDEN], 0.5), types], axis=0)
    x = g.layer_norm(g.op("Add", [g.op("Add", [word, pos]), typ]))
    # Additive attention mask: 0 on tokens, -10000 on padding, [N, 1, 1, T].
    m = g.op("Cast", [g.op("Unsqueeze", [mask, g.const("axes", np.array([1, 2], np.int64))])], to=TensorProto.FLOAT)
    bias = g.op("Mul", [g.op("Sub", [g.const("one", np.array(1.0, np.float32)), m]), g.const("neg", np.array(-10000.0, np.float32))])
    split_shape = g.const("split", np.array([0, 0, HEADS, head], np.int64))
    merge_shape = g.const("merge", np.array([0, 0, HIDDEN], np.int64))
    for _ in range(LAYERS):
        def heads(t):
            return g.op("Transpose", [g.op("Reshape", [t, split_shape])], perm=[0, 2, 1, 3])
        q, k, v = (heads(g.dense(x, HIDDEN, HIDDEN)) for _ in range(3))
        scores = g.op("Div", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                              g.const("scale", np.array(np.sqrt(head), np.float32))])
        probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
        ctx = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_shape])
        x = g.layer_norm(g.op("Add", [x, g.dense(ctx, HIDDEN, HIDDEN)]))
        ffn = g.dense(g.gelu(g.dense(x, HIDDEN, FFN)), FFN, HIDDEN)
        x = g.layer_norm(g.op("Add", [x, ffn]))
    if task == "seq":
        cls = g.op("Gather", [x, g.const("zero_i", np.array(0, np.int64))], axis=1)
        pooled = g.op("Tanh", [g.dense(cls, HIDDEN, HIDDEN)])
        logits = g.dense(pooled, HIDDEN, SEQ_CLASSES)
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", SEQ_CLASSES])
    else:
        logits = g.dense(x, HIDDEN, len(TOK_LABELS))
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", len(TOK_LABELS)])
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in (ids, mask, types)]
    graph = helper.make_graph(g.nodes, f"tiny_bert_{task}", inputs, [out], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="driftline make_text_models.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines, sha = load_corpus()
    tok_path = train_tokenizer(lines, out)
    tok = golden_tokens(tok_path, lines, sha, out)
    vocab = tok.get_vocab_size()
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
    golden = {"corpus_sha256": sha, "max_length": MAX_LEN, "batch": BATCH, "labels": TOK_LABELS}
    for task, seed in (("seq", 1601), ("tok", 1602)):
        model = build_bert(vocab, task, seed)
        path = os.path.join(out, f"bert_{task}.onnx")
        onnx.save(model, path)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        batches = []
        for i in range(0, len(lines), BATCH):
            enc = tok.encode_batch(lines[i:i + BATCH])
            feed = {"input_ids": np.array([e.ids for e in enc], np.int64),
                    "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
                    "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}
            batches.append(sess.run(["logits"], feed)[0].astype(float).tolist())
        golden[task] = batches
    with open(os.path.join(out, "logits_golden.json"), "w") as f:
        json.dump(golden, f)
    print(out)


if __name__ == "__main__":
    main()
