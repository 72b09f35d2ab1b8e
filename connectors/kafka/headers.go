package kafka

import (
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
)

// pipeline.Header and kgo.RecordHeader have one layout: this conversion
// compiles only while they do, which makes the slice views below sound.
var _ = pipeline.Header(kgo.RecordHeader{})

// message is r as the pipeline's input message. Its key, value and headers
// are views of r's, not copies.
func message(r *kgo.Record) pipeline.Message {
	return pipeline.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
		Timestamp: r.Timestamp, Headers: pipelineHeaders(r.Headers)}
}

// pipelineHeaders views franz-go headers as pipeline headers, without
// copying (nil for none).
func pipelineHeaders(hs []kgo.RecordHeader) []pipeline.Header {
	if len(hs) == 0 {
		return nil
	}
	return unsafe.Slice((*pipeline.Header)(unsafe.Pointer(unsafe.SliceData(hs))), len(hs))
}

// kgoHeaders views pipeline headers as franz-go headers, without copying
// (nil for none). franz-go only reads them.
func kgoHeaders(hs []pipeline.Header) []kgo.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	return unsafe.Slice((*kgo.RecordHeader)(unsafe.Pointer(unsafe.SliceData(hs))), len(hs))
}
