#!/usr/bin/env python3
"""Run Presidio's pattern recognizers on driftline's labelled PII corpus.

Reads stages/textpii/testdata/corpus.jsonl (UTF-8 byte offsets, converted
here to Presidio's character offsets), runs the recognizers of every type
Presidio and driftline both support, anonymizes each line with
presidio-anonymizer's replace operator, and prints one JSON object: precision
and recall per type (exact span; and "overlap": any overlap with a labelled
span of the same type) and lines per second for analyze alone and for
analyze + anonymize.

Presidio's AnalyzerEngine needs a spaCy model, which it downloads at start
(en_core_web_lg, via raw.githubusercontent.com); with no network besides the
package registries it fails, so the recognizers are called directly, with
nlp_artifacts=None, as a PatternRecognizer allows, and overlapping results
are resolved by score as the AnalyzerEngine does.

Versions used: presidio-analyzer 2.2.366, presidio-anonymizer 2.2.366
(with phonenumbers as they pull it in).
"""
import json
import logging
import os
import sys
import time

from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                      IpRecognizer, PhoneRecognizer)
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "stages", "textpii", "testdata", "corpus.jsonl")
TYPES = {"EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "payment_card",
         "IBAN_CODE": "iban", "IP_ADDRESS": "ip_address"}


def load():
    lines = []
    with open(CORPUS, encoding="utf-8") as f:
        for raw in f:
            d = json.loads(raw)
            text = d["text"]
            byte_to_char, pos = {}, 0
            for i, ch in enumerate(text):
                byte_to_char[pos] = i
                pos += len(ch.encode("utf-8"))
            byte_to_char[pos] = len(text)
            spans = [(s["type"], byte_to_char[s["start"]], byte_to_char[s["end"]]) for s in d["spans"]]
            lines.append((text, spans))
    return lines


def recognizers():
    return [EmailRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(),
            PhoneRecognizer(supported_regions=("US", "GB", "DE", "CN", "FR"))]


def analyze(recs, text):
    results = []
    for r in recs:
        results.extend(r.analyze(text, r.supported_entities, None) or [])
    # The AnalyzerEngine's conflict resolution: the higher score wins an overlap.
    results.sort(key=lambda r: (-r.score, r.start))
    kept = []
    for r in results:
        if all(r.end <= k.start or r.start >= k.end for k in kept):
            kept.append(r)
    return sorted(kept, key=lambda r: r.start)


def main():
    # tldextract (under the e-mail recognizer) tries to download the public
    # suffix list and falls back to its bundled snapshot: silence the tries.
    logging.getLogger("tldextract").disabled = True
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    lines = load()
    recs = recognizers()
    anon = AnonymizerEngine()
    ops = {"DEFAULT": OperatorConfig("replace")}
    scores = {t: {"tp": 0, "fp": 0, "fn": 0, "overlap_found": 0, "labelled": 0} for t in TYPES.values()}
    for text, spans in lines:
        found = [(TYPES[r.entity_type], r.start, r.end) for r in analyze(recs, text) if r.entity_type in TYPES]
        want = [s for s in spans if s[0] in scores]
        for s in want:
            scores[s[0]]["labelled"] += 1
            if any(f[0] == s[0] and f[1] < s[2] and s[1] < f[2] for f in found):
                scores[s[0]]["overlap_found"] += 1
        for f in found:
            if f in want:
                scores[f[0]]["tp"] += 1
            else:
                scores[f[0]]["fp"] += 1
        for s in want:
            if s not in found:
                scores[s[0]]["fn"] += 1
    out = {"lines": len(lines), "types": {}}
    for t, s in scores.items():
        out["types"][t] = {"precision": s["tp"] / max(1, s["tp"] + s["fp"]), "recall": s["tp"] / max(1, s["labelled"]),
                           "recall_overlap": s["overlap_found"] / max(1, s["labelled"]), **s}
    best = {}
    for mode in ("analyze", "analyze+anonymize"):
        t_best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            for text, _ in lines:
                res = analyze(recs, text)
                if mode != "analyze":
                    anon.anonymize(text=text, analyzer_results=res, operators=ops)
            t_best = min(t_best, time.perf_counter() - t0)
        best[mode] = len(lines) / t_best
    out["lines_per_s"] = best
    print(json.dumps(out))


if __name__ == "__main__":
    main()
