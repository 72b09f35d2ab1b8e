package app

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/driftline/driftline/pipeline/replay"
)

// ParseOffsetRanges parses replay's start and end offsets, "P:O,P:O" each
// (the from-offsets and to-offsets options), into one range per partition,
// sorted by partition. Errors are *OptionErrors naming the option.
func ParseOffsetRanges(fromText, toText string) ([]replay.Range, error) {
	from, err := ParsePartitionOffsets(fromText)
	if err != nil {
		return nil, optionErr("from-offsets", "", err)
	}
	to, err := ParsePartitionOffsets(toText)
	if err != nil {
		return nil, optionErr("to-offsets", "", err)
	}
	var out []replay.Range
	for p, s := range from {
		e, ok := to[p]
		if !ok {
			return nil, optionErr("to-offsets", "", fmt.Errorf("no end for partition %d of the start offsets", p))
		}
		if e < s {
			return nil, optionErr("to-offsets", "", fmt.Errorf("partition %d ends at %d, before its start %d", p, e, s))
		}
		out = append(out, replay.Range{Partition: p, Start: s, End: e})
	}
	for p := range to {
		if _, ok := from[p]; !ok {
			return nil, optionErr("from-offsets", "", fmt.Errorf("no start for partition %d of the end offsets", p))
		}
	}
	slices.SortFunc(out, func(a, b replay.Range) int { return int(a.Partition - b.Partition) })
	return out, nil
}

// ParsePartitionOffsets parses "P:O,P:O".
func ParsePartitionOffsets(s string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for _, part := range strings.Split(s, ",") {
		ps, offs, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("%q is not PARTITION:OFFSET", part)
		}
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("%q: bad partition %q", part, ps)
		}
		o, err := strconv.ParseInt(offs, 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("%q: bad offset %q", part, offs)
		}
		if _, dup := out[int32(p)]; dup {
			return nil, fmt.Errorf("partition %d given twice", p)
		}
		out[int32(p)] = o
	}
	if len(out) == 0 {
		return nil, errors.New("no partitions")
	}
	return out, nil
}
