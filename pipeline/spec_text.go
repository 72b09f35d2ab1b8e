package pipeline

import (
	"fmt"
	"regexp"
	"slices"
)

// TextSpec configures the stages that read free-text fields (string
// fields of the schema):
//
//	text:
//	  pii:                       # personal data inside free text
//	    - field: message
//	      action: pseudonymize   # redact (default), mask, pseudonymize or encrypt
//	      types: [email, phone]  # default: every built-in type
//	      custom: [{name: order_ref, pattern: 'ORD-\d{10}', validator: luhn}]
//	      entities: [PER]        # spans of stages.text.model (token classification) to treat as PII
//	  tokens:                    # hashed bag of words for the linear models
//	    - {field: message, max_tokens: 32}
//	  model:                     # a transformer through ONNX Runtime
//	    field: message
//	    path: models/intent.onnx
//	    tokenizer: models/tokenizer.json
//	    task: sequence_classification
//	    outputs: [p_billing, p_cancel]
//
// The PII recognizers are stages/textpii's; keys come from
// stages.anonymize (hmac_key_env for pseudonymize, encryption_key_env for
// encrypt), so that a pseudonym in free text equals the pseudonym of the
// same value in a structured field.
type TextSpec struct {
	PII    []TextPIISpec    `yaml:"pii"`
	Tokens []TextTokensSpec `yaml:"tokens"`
	Model  *TextModelSpec   `yaml:"model"`
}

// TextPIISpec finds personal data in one free-text field and rewrites each
// finding with the field's action.
type TextPIISpec struct {
	Field string `yaml:"field"`
	// Action is what replaces each finding (default redact):
	//   - redact: "[TYPE]", e.g. "[EMAIL]";
	//   - mask: every character but the last keep_last (default 4) is '*';
	//   - pseudonymize: the anonymize stage's token of the normalized value
	//     (digits only for numbers, lower case for e-mail addresses), so
	//     tokens join across fields and formats;
	//   - encrypt: "[TYPE:" + base64(nonce ‖ AES-256-GCM) + "]".
	Action   AnonymizeOp `yaml:"action"`
	KeepLast int         `yaml:"keep_last"`
	// Types are the built-in recognizers to run: email, phone,
	// payment_card, iban, ip_address, cn_resident_id. Absent: all of them;
	// [] runs none (custom recognizers only).
	Types []string `yaml:"types"`
	// Custom recognizers: a name, an RE2 pattern and an optional validator
	// (luhn, mod97, cn_resident_id).
	Custom []TextPIICustomSpec `yaml:"custom"`
	// Entities are entity labels of stages.text.model (a token
	// classification model on this field) whose spans are PII too, e.g.
	// [PER, LOC]; their type in metrics is "entity_<label>".
	Entities []string `yaml:"entities"`
}

// TextPIICustomSpec is a user's recognizer.
type TextPIICustomSpec struct {
	Name      string `yaml:"name"`
	Pattern   string `yaml:"pattern"`
	Validator string `yaml:"validator"`
}

// TextTokensSpec hashes the lower-cased words of a free-text field into
// the featurize stage's hashed block: up to MaxTokens indices per row
// (the first words; absent slots are -1), after the categorical fields.
type TextTokensSpec struct {
	Field     string `yaml:"field"`
	MaxTokens int    `yaml:"max_tokens"`
}

// The tasks of stages.text.model.
const (
	TaskSequenceClassification = "sequence_classification"
	TaskTokenClassification    = "token_classification"
)

// TextModelSpec runs a user's ONNX transformer on a free-text field,
// tokenized by a Hugging Face tokenizer.json (WordPiece). The model takes
// int64 input_ids and attention_mask [N, T] (and token_type_ids when it
// has that input) and returns float32 logits: [N, K] for sequence
// classification, [N, T, K] for token classification.
type TextModelSpec struct {
	Field     string `yaml:"field"`
	Path      string `yaml:"path"`
	Tokenizer string `yaml:"tokenizer"`
	// Task is sequence_classification or token_classification.
	Task string `yaml:"task"`
	// Output names the logits output; it may be empty when the model has
	// one output.
	Output string `yaml:"output"`
	// MaxLength truncates token sequences, [CLS] and [SEP] included
	// (default 128). Each batch is padded to its longest sequence.
	MaxLength int `yaml:"max_length"`
	// Outputs (sequence classification) are K float fields of the schema
	// that receive the class probabilities (softmax of the logits), in
	// class order, for featurize, the drift monitor and passthrough. The
	// input never sets them: the stage overwrites them.
	Outputs []string `yaml:"outputs"`
	// Labels (token classification) name the K classes in BIO form:
	// "O", "B-PER", "I-PER", ... Spans are decoded from them.
	Labels []string `yaml:"labels"`
	// ExecutionProvider is cpu (the default) or cuda, with DeviceID.
	ExecutionProvider string `yaml:"execution_provider"`
	DeviceID          int    `yaml:"device_id"`
	// LatencyBudget, when set, splits each batch into sub-batches sized
	// so that one ONNX Runtime call fits the budget; each sub-batch is
	// padded to its own longest sequence.
	LatencyBudget Duration `yaml:"latency_budget"`
}

// DefaultTextMaxLength is stages.text.model.max_length's default.
const DefaultTextMaxLength = 128

// Text PII types and validators, as stages/textpii names them.
var (
	textPIITypes      = []string{"email", "phone", "payment_card", "iban", "ip_address", "cn_resident_id"}
	textPIIValidators = []string{"", "luhn", "mod97", "cn_resident_id"}
	textPIICustomName = regexp.MustCompile(`^[a-z0-9_]+$`)
)

// HasTextPII reports whether stages.text.pii names any field.
func (s *Spec) HasTextPII() bool { return len(s.Stages.Text.PII) > 0 }

func (s *Spec) applyTextDefaults() {
	if m := s.Stages.Text.Model; m != nil {
		if m.MaxLength == 0 {
			m.MaxLength = DefaultTextMaxLength
		}
		if m.ExecutionProvider == "" {
			m.ExecutionProvider = ProviderCPU
		}
	}
	for i := range s.Stages.Text.PII {
		if s.Stages.Text.PII[i].Action == "" {
			s.Stages.Text.PII[i].Action = OpRedact
		}
	}
}

// validateText checks stages.text. It reports whether a pseudonymize or
// encrypt action needs the anonymize stage's keys.
func (s *Spec) validateText(add func(path, format string, args ...any), checkField func(path, name string, types ...FieldType)) (needHMAC, needAES bool) {
	t := &s.Stages.Text
	seen := map[string]bool{}
	for i, p := range t.PII {
		path := fmt.Sprintf("stages.text.pii[%d]", i)
		checkField(path+".field", p.Field, TypeString)
		if seen[p.Field] {
			add(path+".field", "field %q is listed twice", p.Field)
		}
		seen[p.Field] = true
		switch p.Action {
		case OpRedact, OpMask:
		case OpPseudonymize:
			needHMAC = true
		case OpEncrypt:
			needAES = true
		default:
			add(path+".action", "unknown action %q (want redact, mask, pseudonymize or encrypt)", p.Action)
		}
		if p.KeepLast < 0 {
			add(path+".keep_last", "must not be negative")
		}
		for k, typ := range p.Types {
			if !slices.Contains(textPIITypes, typ) {
				add(fmt.Sprintf("%s.types[%d]", path, k), "unknown type %q (want one of %v)", typ, textPIITypes)
			}
		}
		for k, c := range p.Custom {
			cp := fmt.Sprintf("%s.custom[%d]", path, k)
			if !textPIICustomName.MatchString(c.Name) || slices.Contains(textPIITypes, c.Name) {
				add(cp+".name", "%q must be lower case letters, digits and _, and not a built-in type", c.Name)
			}
			if re, err := regexp.Compile(c.Pattern); err != nil {
				add(cp+".pattern", "%v", err)
			} else if re.MatchString("") {
				add(cp+".pattern", "matches the empty string")
			}
			if !slices.Contains(textPIIValidators, c.Validator) {
				add(cp+".validator", "unknown validator %q (want luhn, mod97 or cn_resident_id, or none)", c.Validator)
			}
		}
		if len(p.Entities) > 0 {
			m := t.Model
			if m == nil || m.Task != TaskTokenClassification || m.Field != p.Field {
				add(path+".entities", "needs stages.text.model with task token_classification on field %q", p.Field)
			}
		}
		if p.Field == s.Schema.IDField {
			add(path+".field", "the id field %q cannot be rewritten", p.Field)
		}
	}
	for i, tk := range t.Tokens {
		path := fmt.Sprintf("stages.text.tokens[%d]", i)
		checkField(path+".field", tk.Field, TypeString)
		if tk.MaxTokens < 1 || tk.MaxTokens > 512 {
			add(path+".max_tokens", "must be in [1, 512], got %d", tk.MaxTokens)
		}
	}
	if m := t.Model; m != nil {
		s.validateTextModel(m, add, checkField)
	}
	return needHMAC, needAES
}

func (s *Spec) validateTextModel(m *TextModelSpec, add func(path, format string, args ...any), checkField func(path, name string, types ...FieldType)) {
	const p = "stages.text.model."
	checkField(p+"field", m.Field, TypeString)
	if m.Path == "" {
		add(p+"path", "is required")
	}
	if m.Tokenizer == "" {
		add(p+"tokenizer", "is required (a Hugging Face tokenizer.json)")
	}
	if m.MaxLength < 3 || m.MaxLength > 4096 {
		add(p+"max_length", "must be in [3, 4096], got %d", m.MaxLength)
	}
	switch m.Task {
	case TaskSequenceClassification:
		if len(m.Outputs) < 1 {
			add(p+"outputs", "sequence_classification needs the float fields that receive the class probabilities")
		}
		for i, o := range m.Outputs {
			checkField(fmt.Sprintf("%soutputs[%d]", p, i), o, TypeFloat)
			if f := s.Field(o); f != nil && f.Required {
				add(fmt.Sprintf("%soutputs[%d]", p, i), "field %q is set by the model and must not be required", o)
			}
		}
		if len(m.Labels) > 0 {
			add(p+"labels", "applies to token_classification only")
		}
	case TaskTokenClassification:
		if len(m.Labels) < 2 {
			add(p+"labels", "token_classification needs the BIO labels of its classes (O, B-X, I-X, ...)")
		}
		for i, l := range m.Labels {
			if l != "O" && (len(l) < 3 || (l[:2] != "B-" && l[:2] != "I-")) {
				add(fmt.Sprintf("%slabels[%d]", p, i), "%q is not a BIO label (O, B-<type> or I-<type>)", l)
			}
		}
		if len(m.Outputs) > 0 {
			add(p+"outputs", "applies to sequence_classification only")
		}
	default:
		add(p+"task", "unknown task %q (want sequence_classification or token_classification)", m.Task)
	}
	switch m.ExecutionProvider {
	case ProviderCPU:
		if m.DeviceID != 0 {
			add(p+"device_id", "applies to execution_provider cuda only")
		}
	case ProviderCUDA:
		if m.DeviceID < 0 {
			add(p+"device_id", "must not be negative, got %d", m.DeviceID)
		}
	default:
		add(p+"execution_provider", "unknown provider %q (want cpu or cuda)", m.ExecutionProvider)
	}
	if m.LatencyBudget < 0 {
		add(p+"latency_budget", "must not be negative")
	}
}
