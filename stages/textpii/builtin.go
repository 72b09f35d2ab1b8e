package textpii

// Byte classes of the scanner's dispatch table.
const (
	clDigit  = 1 << iota // 0-9
	clUpper              // A-Z
	clLower              // a-z
	clLocal              // may be in an e-mail local part
	clDomain             // may be in an e-mail domain
	clHex                // 0-9, a-f, A-F
)

var class [256]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		class[c] |= clDigit | clLocal | clDomain | clHex
	}
	for c := 'A'; c <= 'Z'; c++ {
		class[c] |= clUpper | clLocal | clDomain
	}
	for c := 'a'; c <= 'z'; c++ {
		class[c] |= clLower | clLocal | clDomain
	}
	for _, c := range "abcdefABCDEF" {
		class[c] |= clHex
	}
	for _, c := range "._%+-" {
		class[c] |= clLocal
	}
	for _, c := range ".-" {
		class[c] |= clDomain
	}
}

func isAlnum(c byte) bool { return class[c]&(clDigit|clUpper|clLower) != 0 }
func isDigit(c byte) bool { return class[c]&clDigit != 0 }

// wordStart reports whether position i starts a token: the byte before it
// is not an ASCII letter, digit or '_'. Non-ASCII text (CJK) is a boundary.
func wordStart(text string, i int) bool {
	return i == 0 || !(isAlnum(text[i-1]) || text[i-1] == '_')
}

// scanBuiltins appends the built-in findings of text to dst, in order.
func (s *Scanner) scanBuiltins(dst []Finding, text string) []Finding {
	wantEmail := s.want[0]
	wantNumeric := s.want[1] || s.want[2] || s.want[5] || s.want[4]
	wantIBAN := s.want[3]
	wantIP := s.want[4]
	n := len(text)
	for i := 0; i < n; {
		c := text[i]
		cl := class[c]
		if cl == 0 && c != '+' && c != '(' && c != ':' {
			i++
			continue
		}
		if !wordStart(text, i) {
			i++
			continue
		}
		if wantEmail && cl&clLocal != 0 {
			if end, ok := matchEmail(text, i); ok {
				dst = append(dst, Finding{Type: Email, Start: i, End: end})
				i = end
				continue
			}
		}
		if wantIP && (cl&clHex != 0 || c == ':') {
			if end, ok := matchIPv6(text, i); ok {
				dst = append(dst, Finding{Type: IPAddress, Start: i, End: end})
				i = end
				continue
			} else if end > i {
				i = end // a run of hex groups that is no address is skipped whole
				continue
			}
		}
		if wantIBAN && cl&clUpper != 0 {
			if end, ok := matchIBAN(text, i); ok {
				dst = append(dst, Finding{Type: IBAN, Start: i, End: end})
				i = end
				continue
			}
		}
		if wantNumeric && (cl&clDigit != 0 || c == '+' || c == '(') {
			if t, end, ok := s.matchNumber(text, i); ok {
				dst = append(dst, Finding{Type: t, Start: i, End: end})
				i = end
				continue
			} else if end > i {
				i = end // a number that is no finding is skipped whole
				continue
			}
		}
		// Skip the rest of this token.
		i++
		for i < n && (isAlnum(text[i]) || text[i] == '_') {
			i++
		}
	}
	return dst
}

// matchEmail matches local@domain.tld starting at i.
func matchEmail(text string, i int) (int, bool) {
	n := len(text)
	j := i
	for j < n && class[text[j]]&clLocal != 0 {
		j++
	}
	if j == i || j >= n || text[j] != '@' || text[i] == '.' || text[j-1] == '.' {
		return 0, false
	}
	k := j + 1
	lastDot, labelStart := -1, k
	for k < n && class[text[k]]&clDomain != 0 {
		if text[k] == '.' {
			if k == labelStart || text[k-1] == '-' { // empty label or label ending in '-'
				break
			}
			lastDot, labelStart = k, k+1
		}
		k++
	}
	// A trailing '.' or '-' is punctuation, not part of the domain.
	for k > j+1 && (text[k-1] == '.' || text[k-1] == '-') {
		k--
	}
	for lastDot >= k {
		lastDot--
		for lastDot > j && text[lastDot] != '.' {
			lastDot--
		}
		if lastDot <= j {
			return 0, false
		}
	}
	if lastDot < 0 || lastDot >= k-2 {
		return 0, false
	}
	for p := lastDot + 1; p < k; p++ { // the TLD is letters only
		if class[text[p]]&(clUpper|clLower) == 0 {
			return 0, false
		}
	}
	if k < n && (isAlnum(text[k]) || text[k] == '@') {
		return 0, false
	}
	return k, true
}

// matchIPv6 matches an IPv6 address (with an embedded IPv4 tail allowed)
// starting at i: a run of hex digits, ':' and '.' with at least two colons
// that is an IPv6 address. When the run has two colons or more but is no
// address, end is where it ends, so that no part of it is matched again.
func matchIPv6(text string, i int) (end int, ok bool) {
	n := len(text)
	j, colons := i, 0
	for j < n && j-i <= 45 && (class[text[j]]&clHex != 0 || text[j] == ':' || text[j] == '.') {
		if text[j] == ':' {
			colons++
		}
		j++
	}
	if colons < 2 {
		return 0, false
	}
	// Trailing punctuation (a sentence's '.' or ':') is not part of it.
	for j > i && (text[j-1] == '.' || (text[j-1] == ':' && (j-2 < i || text[j-2] != ':'))) {
		j--
	}
	if j < n && (isAlnum(text[j]) || text[j] == '_') {
		for j < n && (isAlnum(text[j]) || text[j] == '_') {
			j++
		}
		return j, false
	}
	if !validIPv6(text[i:j]) {
		return j, false
	}
	return j, true
}

// validIPv6 reports whether s is an IPv6 address in RFC 4291 text form:
// eight groups of 1-4 hex digits, or fewer with one "::", the last two
// optionally written as a dotted IPv4 address. (netip.ParseAddr says the
// same, but allocates its error for every non-address.)
func validIPv6(s string) bool {
	groups, gap := 0, false
	for i := 0; i < len(s); {
		if s[i] == ':' {
			if i+1 < len(s) && s[i+1] == ':' {
				if gap {
					return false
				}
				gap = true
				i += 2
				if i == len(s) {
					break
				}
				continue
			}
			if i == 0 || i+1 == len(s) {
				return false
			}
			i++
		}
		j := i
		for j < len(s) && j-i < 5 && class[s[j]]&clHex != 0 {
			j++
		}
		if j < len(s) && s[j] == '.' { // an IPv4 tail
			if !validIPv4(s[i:]) {
				return false
			}
			groups += 2
			break
		}
		if j == i || j-i > 4 || (j < len(s) && s[j] != ':') {
			return false
		}
		groups++
		i = j
	}
	return groups == 8 && !gap || groups < 8 && gap
}

// validIPv4 reports whether s is a dotted-quad IPv4 address: four decimal
// octets of at most 255, without leading zeros.
func validIPv4(s string) bool {
	octets := 0
	for i := 0; i < len(s); {
		j, v := i, 0
		for j < len(s) && isDigit(s[j]) && j-i < 3 {
			v = v*10 + int(s[j]-'0')
			j++
		}
		if j == i || v > 255 || (s[i] == '0' && j-i > 1) {
			return false
		}
		octets++
		if j == len(s) {
			break
		}
		if s[j] != '.' || octets == 4 {
			return false
		}
		i = j + 1
	}
	return octets == 4
}

// ibanLengths holds the IBAN length of each country that issues them
// (SWIFT IBAN registry), indexed by the two letters.
var ibanLengths = map[[2]byte]uint8{}

func init() {
	for _, e := range []struct {
		cc string
		n  uint8
	}{
		{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22}, {"BH", 22},
		{"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28},
		{"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23},
		{"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
		{"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
		{"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18},
		{"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24},
		{"SC", 31}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
		{"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
	} {
		ibanLengths[[2]byte{e.cc[0], e.cc[1]}] = e.n
	}
}

// matchIBAN matches an IBAN starting at i, written as one run or in groups
// of four separated by single spaces, of its country's length and with a
// valid mod-97 check.
func matchIBAN(text string, i int) (int, bool) {
	n := len(text)
	if i+15 > n || class[text[i+1]]&clUpper == 0 || !isDigit(text[i+2]) || !isDigit(text[i+3]) {
		return 0, false
	}
	want, ok := ibanLengths[[2]byte{text[i], text[i+1]}]
	if !ok {
		return 0, false
	}
	j, count := i, 0
	for j < n && count < int(want) {
		c := text[j]
		switch {
		case class[c]&(clUpper|clDigit) != 0:
			count++
			j++
		case c == ' ' && count%4 == 0 && count > 0 && j+1 < n && class[text[j+1]]&(clUpper|clDigit) != 0:
			j++
		default:
			return 0, false
		}
	}
	if count != int(want) || (j < n && (isAlnum(text[j]) || text[j] == '_')) {
		return 0, false
	}
	if !mod97Text(text[i:j]) {
		return 0, false
	}
	return j, true
}

// number is a candidate run of digits with separators.
type number struct {
	end      int
	digits   int
	plus     bool // starts with '+'
	paren    bool // has a "(ddd)" group
	seps     int  // separators between digits
	dots     int  // '.' separators
	groups   [8]uint8
	ngroups  int
	checkX   bool // ends in an 'X' check character (resident ids)
	first    byte // the first digit
	second   byte // the second digit
	sepKinds uint8
}

const (
	sepSpace = 1 << iota
	sepDash
	sepDot
)

// scanNumber reads the longest run at i of digits separated by single
// spaces, '-' or '.', with an optional leading '+' and "(ddd)" group. ok is
// false when no digit follows.
func scanNumber(text string, i int) (num number, ok bool) {
	n := len(text)
	j := i
	if text[j] == '+' {
		num.plus = true
		j++
	}
	group := 0
	closeGroup := func() {
		if group > 0 {
			if num.ngroups < len(num.groups) {
				num.groups[num.ngroups] = uint8(min(group, 255))
			}
			num.ngroups++
			group = 0
		}
	}
	for j < n {
		c := text[j]
		switch {
		case isDigit(c):
			if num.digits == 0 {
				num.first = c
			} else if num.digits == 1 {
				num.second = c
			}
			num.digits++
			group++
			j++
			continue
		case c == '(' && num.digits == 0 || c == '(' && num.plus && group == 0:
			// "(555) 123-4567" or "+44 (20) ...": a parenthesised group.
			k := j + 1
			for k < n && isDigit(text[k]) {
				k++
			}
			if k == j+1 || k >= n || text[k] != ')' || k-j-1 > 5 {
				return num, num.digits > 0
			}
			closeGroup()
			for p := j + 1; p < k; p++ {
				if num.digits == 0 {
					num.first = text[p]
				} else if num.digits == 1 {
					num.second = text[p]
				}
				num.digits++
			}
			group = k - j - 1
			closeGroup()
			num.paren = true
			j = k + 1
			if j < n && text[j] == ' ' && j+1 < n && isDigit(text[j+1]) {
				j++
				num.seps++
				num.sepKinds |= sepSpace
			}
			continue
		case (c == ' ' || c == '-' || c == '.') && num.digits > 0 && group > 0 && j+1 < n && isDigit(text[j+1]):
			closeGroup()
			num.seps++
			switch c {
			case ' ':
				num.sepKinds |= sepSpace
			case '-':
				num.sepKinds |= sepDash
			case '.':
				num.sepKinds |= sepDot
				num.dots++
			}
			j++
			continue
		case c == ' ' && num.plus && num.digits > 0 && group > 0 && j+1 < n && text[j+1] == '(':
			closeGroup()
			num.seps++
			num.sepKinds |= sepSpace
			j++
			continue
		}
		break
	}
	closeGroup()
	if num.digits == 17 && num.seps == 0 && !num.plus && !num.paren && j < n && (text[j] == 'X' || text[j] == 'x') {
		num.checkX = true
		j++
	}
	num.end = j
	return num, num.digits > 0
}

// matchNumber classifies the number at i. end is where the number ends
// even when it is no finding, so that the scanner skips it whole.
func (s *Scanner) matchNumber(text string, i int) (Type, int, bool) {
	num, ok := scanNumber(text, i)
	if !ok {
		return "", i, false
	}
	end := num.end
	n := len(text)
	// The number must end at a token boundary: not inside a longer token
	// nor in front of an '@' (an e-mail's local part).
	if end < n && (isAlnum(text[end]) || text[end] == '_' || text[end] == '@') {
		for end < n && (isAlnum(text[end]) || text[end] == '_') {
			end++
		}
		return "", end, false
	}
	span := text[i:end]
	if s.want[4] && num.dots == 3 && num.seps == 3 && num.ngroups == 4 && !num.plus && !num.paren {
		if validIPv4(span) {
			return IPAddress, end, true
		}
		return "", end, false
	}
	if s.want[5] && (num.digits == 18 || num.checkX) && num.seps == 0 && !num.plus && !num.paren {
		if validCNResidentID(span) {
			return CNResidentID, end, true
		}
	}
	if s.want[2] && !num.plus && !num.paren && (num.digits >= 13 && num.digits <= 16 || num.digits == 19) && num.sepKinds&sepDot == 0 &&
		num.first >= '2' && num.first <= '6' && cardGrouping(&num) && luhnText(span) {
		return PaymentCard, end, true
	}
	if s.want[1] && isPhone(&num) {
		return Phone, end, true
	}
	return "", end, false
}

// cardGrouping accepts a card number written as one run, or in groups of
// four (the last group 1-4 digits), or Amex's 4-6-5 and 4-6-4 (Diners).
// Cards have 13 to 16 or 19 digits, the lengths card schemes issue; 17
// and 18 digits are left to ids and tracking numbers.
func cardGrouping(num *number) bool {
	if num.seps == 0 {
		return true
	}
	if num.ngroups > len(num.groups) || num.sepKinds&(sepSpace|sepDash) == sepSpace|sepDash {
		return false
	}
	g := num.groups[:num.ngroups]
	if len(g) == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4) {
		return true
	}
	for k, x := range g {
		if x != 4 && !(k == len(g)-1 && x >= 1 && x < 4) {
			return false
		}
	}
	return true
}

// isPhone accepts E.164 numbers ("+" and 8 to 15 digits), Chinese mobile
// numbers (1[3-9] and 9 digits, in one run or as 3-4-4), North American
// numbers (10 digits, written (ddd) ddd-dddd or ddd-ddd-dddd or with dots
// or spaces), and national numbers with a trunk prefix 0 (10 or 11 digits,
// e.g. 020 7946 0958, 010-12345678, 030 12345678).
func isPhone(num *number) bool {
	if num.plus {
		return num.digits >= 8 && num.digits <= 15 && num.first != '0'
	}
	if num.ngroups > len(num.groups) || num.dots > 0 && num.sepKinds != sepDot {
		return false
	}
	g := num.groups[:num.ngroups]
	switch num.digits {
	case 11:
		if num.first == '1' && num.second >= '3' && num.second <= '9' &&
			(len(g) == 1 || len(g) == 3 && g[0] == 3 && g[1] == 4 && g[2] == 4) {
			return true
		}
	case 10:
		if num.first >= '2' && num.first <= '9' && len(g) == 3 && g[0] == 3 && g[1] == 3 && g[2] == 4 {
			return true
		}
	}
	if num.first == '0' && (num.digits == 10 || num.digits == 11) && len(g) >= 2 && len(g) <= 4 && g[0] >= 2 && g[0] <= 5 {
		return true
	}
	return false
}

// luhnText reports whether the digits of s (other bytes ignored) pass the
// Luhn check; fewer than 2 digits never do.
func luhnText(s string) bool {
	sum, digits := 0, 0
	for k := len(s) - 1; k >= 0; k-- {
		c := s[k]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if digits%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		digits++
	}
	return digits >= 2 && sum%10 == 0
}

// mod97Text is the ISO 7064 mod-97-10 check of an IBAN-like string: spaces
// are ignored, the first four characters move to the end, letters count as
// 10..35 (either case), and the number's remainder by 97 must be 1.
func mod97Text(s string) bool {
	var buf [40]byte
	n := 0
	for k := 0; k < len(s); k++ {
		c := s[k]
		if c == ' ' {
			continue
		}
		if n == len(buf) || class[c]&(clDigit|clUpper|clLower) == 0 {
			return false
		}
		buf[n] = c
		n++
	}
	if n < 5 {
		return false
	}
	rem := 0
	add := func(c byte) {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'a':
			rem = (rem*100 + int(c-'a') + 10) % 97
		default:
			rem = (rem*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range buf[4:n] {
		add(c)
	}
	for _, c := range buf[:4] {
		add(c)
	}
	return rem == 1
}

// cnWeights are GB 11643-1999's weights of the first 17 digits.
var cnWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// cnCheck maps the weighted sum mod 11 to the check character.
const cnCheck = "10X98765432"

// validCNResidentID checks an 18-character resident identity number: a
// region code that does not start with 0, a birth date YYYYMMDD between
// 1900 and 2099 that exists, and the check character.
func validCNResidentID(s string) bool {
	if len(s) != 18 || s[0] == '0' {
		return false
	}
	sum := 0
	for k := 0; k < 17; k++ {
		if !isDigit(s[k]) {
			return false
		}
		sum += int(s[k]-'0') * cnWeights[k]
	}
	last := s[17]
	if last == 'x' {
		last = 'X'
	}
	if cnCheck[sum%11] != last {
		return false
	}
	year := atoi(s[6:10])
	month := atoi(s[10:12])
	day := atoi(s[12:14])
	if year < 1900 || year > 2099 || month < 1 || month > 12 || day < 1 {
		return false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[month]
	if month == 2 && (year%4 == 0 && year%100 != 0 || year%400 == 0) {
		days = 29
	}
	return day <= days
}

func atoi(s string) int {
	v := 0
	for k := 0; k < len(s); k++ {
		v = v*10 + int(s[k]-'0')
	}
	return v
}
