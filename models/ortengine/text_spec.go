package ortengine

// The inputs a text model takes, as Hugging Face exports name them:
// int64 [N, T] tensors. InputTokenTypeIDs is optional.
const (
	InputIDs          = "input_ids"
	InputMask         = "attention_mask"
	InputTokenTypeIDs = "token_type_ids"
)

// TextBatch is a tokenized batch: N rows of T tokens, row-major, as
// models/tokenizer.Batch lays them out.
type TextBatch struct {
	N, T               int
	IDs, Mask, TypeIDs []int64
}
