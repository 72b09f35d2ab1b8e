// Package textpii finds personal data in free text: e-mail addresses,
// phone numbers (E.164 and national formats, Chinese mobile numbers among
// them), payment card numbers (Luhn), IBANs (ISO 13616 mod-97), IPv4 and
// IPv6 addresses, 18-digit Chinese resident identity numbers (GB 11643
// check digit and birth date), and the user's own patterns, each with an
// optional validator.
//
// A Scanner walks the text once, byte by byte: bytes that cannot start a
// finding (letters in the middle of words, CJK text, punctuation) cost one
// table lookup. Candidates are checked by validators before they count, so
// that numbers that only look like personal data stay: a 16-digit order id
// that fails the Luhn check is not a card, a date is not a phone number.
// Scanning allocates nothing in the steady state; the Findings slice it
// fills is the caller's and is reused.
//
// The package never keeps, logs or formats the text it scans: a Finding
// holds the type and the byte offsets only.
package textpii

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Type names a kind of personal data. The built-in types are the
// constants below; a custom recognizer's type is its name.
type Type string

// The built-in types.
const (
	Email        Type = "email"
	Phone        Type = "phone"
	PaymentCard  Type = "payment_card"
	IBAN         Type = "iban"
	IPAddress    Type = "ip_address"
	CNResidentID Type = "cn_resident_id"
)

// BuiltinTypes lists the built-in types in a fixed order.
func BuiltinTypes() []Type {
	return []Type{Email, Phone, PaymentCard, IBAN, IPAddress, CNResidentID}
}

// Validator names a check a custom recognizer's match must pass.
type Validator string

// The validators a custom recognizer may name.
const (
	// ValidateNone accepts every match.
	ValidateNone Validator = ""
	// ValidateLuhn: the match's digits (other characters ignored) pass the
	// Luhn check, as card numbers and IMEIs do.
	ValidateLuhn Validator = "luhn"
	// ValidateMod97: the match, without spaces, is an ISO 7064 mod-97-10
	// string as IBANs are (letters count as 10..35, the first four
	// characters move to the end, and the remainder is 1).
	ValidateMod97 Validator = "mod97"
	// ValidateCNResidentID: the match is an 18-character Chinese resident
	// identity number with a valid check digit and birth date.
	ValidateCNResidentID Validator = "cn_resident_id"
)

// Validators lists the validators a custom recognizer may name.
func Validators() []Validator {
	return []Validator{ValidateNone, ValidateLuhn, ValidateMod97, ValidateCNResidentID}
}

// Custom is a user's recognizer: a regular expression (Go RE2 syntax) and
// an optional validator.
type Custom struct {
	// Name is the finding type: lower case letters, digits and '_', not a
	// built-in type.
	Name string
	// Pattern is matched anywhere in the text; a match must not be empty.
	Pattern string
	// Validator, when set, must accept a match for it to count.
	Validator Validator
}

// Config selects the recognizers of a Scanner.
type Config struct {
	// Types are the built-in types to find. Nil means every built-in type;
	// an empty non-nil slice means none (custom recognizers only).
	Types []Type
	// Custom recognizers run after the built-in ones; where a custom match
	// overlaps a built-in finding, the earlier (then the longer) one wins.
	Custom []Custom
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	seen := map[Type]bool{}
	for _, t := range c.Types {
		if !slices.Contains(BuiltinTypes(), t) {
			return fmt.Errorf("textpii: unknown type %q (want one of %v)", t, BuiltinTypes())
		}
		if seen[t] {
			return fmt.Errorf("textpii: type %q is listed twice", t)
		}
		seen[t] = true
	}
	for i, cu := range c.Custom {
		if err := cu.validate(); err != nil {
			return fmt.Errorf("textpii: custom[%d]: %w", i, err)
		}
		if seen[Type(cu.Name)] {
			return fmt.Errorf("textpii: custom[%d]: name %q is used twice", i, cu.Name)
		}
		seen[Type(cu.Name)] = true
	}
	return nil
}

func (c Custom) validate() error {
	if c.Name == "" || strings.IndexFunc(c.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) >= 0 {
		return fmt.Errorf("name %q must be lower case letters, digits and _", c.Name)
	}
	if slices.Contains(BuiltinTypes(), Type(c.Name)) {
		return fmt.Errorf("name %q is a built-in type", c.Name)
	}
	if !slices.Contains(Validators(), c.Validator) {
		return fmt.Errorf("unknown validator %q (want luhn, mod97 or cn_resident_id, or none)", c.Validator)
	}
	re, err := regexp.Compile(c.Pattern)
	if err != nil {
		return fmt.Errorf("pattern: %w", err)
	}
	if re.MatchString("") {
		return errors.New("pattern matches the empty string")
	}
	return nil
}

// Finding is one piece of personal data in a text: its type and where it
// is, as byte offsets [Start, End).
type Finding struct {
	Type       Type
	Start, End int
}

// Scanner finds personal data in texts. Build one with New; it is safe for
// concurrent use (it holds no scratch state).
type Scanner struct {
	want   [numBuiltins]bool
	custom []customRecognizer
	// types lists every type the scanner can report, built-ins first.
	types []Type
}

type customRecognizer struct {
	typ       Type
	re        *regexp.Regexp
	validator Validator
}

const numBuiltins = 6

func builtinIndex(t Type) int { return slices.Index(BuiltinTypes(), t) }

// New validates cfg and builds a Scanner.
func New(cfg Config) (*Scanner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scanner{}
	types := cfg.Types
	if types == nil {
		types = BuiltinTypes()
	}
	for _, t := range BuiltinTypes() {
		if slices.Contains(types, t) {
			s.want[builtinIndex(t)] = true
			s.types = append(s.types, t)
		}
	}
	for _, c := range cfg.Custom {
		s.custom = append(s.custom, customRecognizer{typ: Type(c.Name), re: regexp.MustCompile(c.Pattern), validator: c.Validator})
		s.types = append(s.types, Type(c.Name))
	}
	return s, nil
}

// Types lists the types the scanner reports: the selected built-ins in
// BuiltinTypes order, then the custom recognizers' names.
func (s *Scanner) Types() []Type { return slices.Clone(s.types) }

// Scan appends the findings in text to dst, in order of their start, none
// overlapping, and returns dst. It allocates only when dst must grow, or
// when a custom pattern matches.
func (s *Scanner) Scan(dst []Finding, text string) []Finding {
	base := len(dst)
	dst = s.scanBuiltins(dst, text)
	if len(s.custom) == 0 {
		return dst
	}
	builtins := len(dst)
	for i := range s.custom {
		dst = s.custom[i].scan(dst, text)
	}
	if len(dst) > builtins {
		dst = mergeOverlaps(dst, base)
	}
	return dst
}

func (c *customRecognizer) scan(dst []Finding, text string) []Finding {
	for off := 0; off < len(text); {
		loc := c.re.FindStringIndex(text[off:])
		if loc == nil {
			break
		}
		start, end := off+loc[0], off+loc[1]
		if end == start { // unreachable for a validated pattern; never loop
			off = end + 1
			continue
		}
		if validate(c.validator, text[start:end]) {
			dst = append(dst, Finding{Type: c.typ, Start: start, End: end})
		}
		off = end
	}
	return dst
}

// mergeOverlaps sorts dst[base:] by start and drops every finding that
// overlaps a kept one: the earlier start wins, then the longer span.
func mergeOverlaps(dst []Finding, base int) []Finding {
	fs := dst[base:]
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out := fs[:0]
	end := -1
	for _, f := range fs {
		if f.Start < end {
			continue
		}
		out = append(out, f)
		end = f.End
	}
	return dst[:base+len(out)]
}

func validate(v Validator, s string) bool {
	switch v {
	case ValidateLuhn:
		return luhnText(s)
	case ValidateMod97:
		return mod97Text(s)
	case ValidateCNResidentID:
		return len(s) == 18 && validCNResidentID(s)
	}
	return true
}
