package streams

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// PII types of the labelled free-text corpus; they are textpii's type
// names.
const (
	PIIEmail        = "email"
	PIIPhone        = "phone"
	PIIPaymentCard  = "payment_card"
	PIIIBAN         = "iban"
	PIIIPAddress    = "ip_address"
	PIICNResidentID = "cn_resident_id"
)

// PIISpan labels one piece of personal data in a text, by byte offsets
// [Start, End).
type PIISpan struct {
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// PIILine is one labelled line of the corpus.
type PIILine struct {
	Text  string    `json:"text"`
	Spans []PIISpan `json:"spans"`
}

// PIIText writes seeded free text, in English and Chinese, with personal
// data of every PIIType in varied formats, and decoys that look like
// personal data but are not (order ids that fail the Luhn check, dates,
// times, amounts, version numbers, tracking numbers, IBAN-like strings
// with a wrong check). It labels every span of personal data it writes.
// It is not safe for concurrent use.
type PIIText struct {
	rng   *rand.Rand
	buf   strings.Builder
	spans []PIISpan
}

// NewPIIText returns a writer seeded with seed.
func NewPIIText(seed uint64) *PIIText {
	return &PIIText{rng: rand.New(rand.NewPCG(seed, 0x7069695f74657874))}
}

// Line writes one line of the corpus: a template in English or Chinese
// with one to three slots of personal data or decoys.
func (p *PIIText) Line() PIILine {
	p.reset()
	r := p.rng
	zh := r.IntN(2) == 0
	k := 1 + r.IntN(3)
	for s := 0; s < k; s++ {
		if s > 0 {
			if zh {
				p.lit(pick(r, zhJoiners))
			} else {
				p.lit(pick(r, enJoiners))
			}
		}
		if r.IntN(4) == 0 {
			p.decoySentence(zh)
		} else {
			p.piiSentence(zh, allPIITypes[r.IntN(len(allPIITypes))])
		}
	}
	return p.line()
}

// Message writes a customer-service chat message about topic: a sentence
// of the topic's vocabulary, with personal data of a random type embedded
// in one message out of withPII (0: never).
func (p *PIIText) Message(topic []string, withPII int) PIILine {
	p.reset()
	r := p.rng
	p.lit(pick(r, topic))
	if withPII > 0 && r.IntN(withPII) == 0 {
		p.lit(" ")
		p.piiSentence(r.IntN(3) == 0, allPIITypes[r.IntN(len(allPIITypes))])
	}
	if r.IntN(3) == 0 {
		p.lit(" ")
		p.decoySentence(false)
	}
	return p.line()
}

func (p *PIIText) reset() {
	p.buf.Reset()
	p.spans = p.spans[:0]
}

func (p *PIIText) line() PIILine {
	return PIILine{Text: p.buf.String(), Spans: append([]PIISpan{}, p.spans...)}
}

func (p *PIIText) lit(s string) { p.buf.WriteString(s) }

func (p *PIIText) pii(typ, value string) {
	start := p.buf.Len()
	p.buf.WriteString(value)
	p.spans = append(p.spans, PIISpan{Type: typ, Start: start, End: p.buf.Len()})
}

var allPIITypes = []string{PIIEmail, PIIPhone, PIIPaymentCard, PIIIBAN, PIIIPAddress, PIICNResidentID}

var (
	enJoiners = []string{" ", ". ", "; ", " Also, ", " By the way, "}
	zhJoiners = []string{"，", "。", "；另外，", " "}
)

// piiSentence writes a sentence around one value of typ.
func (p *PIIText) piiSentence(zh bool, typ string) {
	r := p.rng
	var pre, post []string
	switch typ {
	case PIIEmail:
		pre, post = pairs(zh, []string{"Please email me at ", "My address is ", "Contact: ", "send it to "},
			[]string{"请发邮件到", "我的邮箱是", "联系邮箱：", "邮箱 "})
	case PIIPhone:
		pre, post = pairs(zh, []string{"Call me on ", "My number is ", "phone: ", "reach me at "},
			[]string{"我的手机号是", "请拨打", "联系电话：", "电话"})
	case PIIPaymentCard:
		pre, post = pairs(zh, []string{"I paid with card ", "card number ", "Charge my card ", "the card "},
			[]string{"我的银行卡号是", "信用卡", "用卡号", "卡号："})
	case PIIIBAN:
		pre, post = pairs(zh, []string{"Refund to IBAN ", "my IBAN is ", "transfer to ", "account "},
			[]string{"退款账户IBAN：", "请转账到", "我的IBAN是", "账户"})
	case PIIIPAddress:
		pre, post = pairs(zh, []string{"I logged in from ", "the server at ", "IP ", "blocked address "},
			[]string{"登录IP是", "服务器地址", "来自IP：", "地址："})
	case PIICNResidentID:
		pre, post = pairs(zh, []string{"ID number ", "my resident ID is ", "identity card ", "ID: "},
			[]string{"我的身份证号是", "身份证号码：", "证件号", "身份证"})
	}
	p.lit(pick(r, pre))
	p.pii(typ, p.value(typ))
	p.lit(pick(r, post))
}

func pairs(zh bool, en, cn []string) (pre, post []string) {
	if zh {
		return cn, []string{"", "。", "，谢谢", "，请尽快处理"}
	}
	return en, []string{"", ".", " please", ", thanks", " today"}
}

// value draws one value of typ in one of its formats.
func (p *PIIText) value(typ string) string {
	r := p.rng
	switch typ {
	case PIIEmail:
		return p.email()
	case PIIPhone:
		return p.phone()
	case PIIPaymentCard:
		return p.card()
	case PIIIBAN:
		return p.iban()
	case PIIIPAddress:
		if r.IntN(2) == 0 {
			return fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		}
		return p.ipv6()
	case PIICNResidentID:
		return p.cnID()
	}
	panic("unknown PII type " + typ)
}

var (
	firstNames = []string{"alice", "bob", "chen.wei", "li_na", "maria", "john.smith", "zhang3", "o.brien", "wang-fang", "sam"}
	domains    = []string{"example.com", "mail.example.org", "qq.com", "163.com", "corp.example.co.uk", "example.net"}
)

func (p *PIIText) email() string {
	r := p.rng
	local := pick(r, firstNames)
	switch r.IntN(3) {
	case 0:
		local += strconv.Itoa(r.IntN(1000))
	case 1:
		local += "+" + pick(r, []string{"shop", "news", "tag"})
	}
	if r.IntN(5) == 0 {
		local = fmt.Sprintf("%d", 10000+r.IntN(900000000))
	}
	return local + "@" + pick(r, domains)
}

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func (p *PIIText) phone() string {
	r := p.rng
	cnMobile := "1" + string("3456789"[r.IntN(7)]) + digits(r, 9)
	area := string("23456789"[r.IntN(8)]) + digits(r, 2)
	switch r.IntN(9) {
	case 0:
		return cnMobile
	case 1:
		return cnMobile[:3] + "-" + cnMobile[3:7] + "-" + cnMobile[7:]
	case 2:
		return "+86 " + cnMobile[:3] + " " + cnMobile[3:7] + " " + cnMobile[7:]
	case 3:
		return "+86" + cnMobile
	case 4:
		return "(" + area + ") " + string("23456789"[r.IntN(8)]) + digits(r, 2) + "-" + digits(r, 4)
	case 5:
		return area + "-" + string("23456789"[r.IntN(8)]) + digits(r, 2) + "-" + digits(r, 4)
	case 6:
		return "+44 20 " + digits(r, 4) + " " + digits(r, 4)
	case 7:
		return "020 " + digits(r, 4) + " " + digits(r, 4)
	default:
		return "+1 " + area + " " + string("23456789"[r.IntN(8)]) + digits(r, 2) + " " + digits(r, 4)
	}
}

// luhnDigit is the check digit that makes body+digit pass the Luhn check.
func luhnDigit(body string) byte {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

func (p *PIIText) card() string {
	r := p.rng
	var body string
	switch r.IntN(4) {
	case 0: // Visa
		body = "4" + digits(r, 14)
	case 1: // Mastercard
		body = "5" + string("12345"[r.IntN(5)]) + digits(r, 13)
	case 2: // UnionPay
		body = "62" + digits(r, 13)
	default: // Amex, 15 digits
		body = "3" + string("47"[r.IntN(2)]) + digits(r, 12)
	}
	num := body + string(luhnDigit(body))
	if len(num) == 15 {
		if r.IntN(2) == 0 {
			return num[:4] + " " + num[4:10] + " " + num[10:]
		}
		return num
	}
	switch r.IntN(3) {
	case 0:
		return num
	case 1:
		return num[:4] + " " + num[4:8] + " " + num[8:12] + " " + num[12:]
	default:
		return num[:4] + "-" + num[4:8] + "-" + num[8:12] + "-" + num[12:]
	}
}

// ibanCheck returns the two check digits of an IBAN of country cc and bban.
func ibanCheck(cc, bban string) string {
	rem := 0
	for _, c := range bban + cc + "00" {
		if c >= 'A' && c <= 'Z' {
			rem = (rem*100 + int(c-'A') + 10) % 97
		} else {
			rem = (rem*10 + int(c-'0')) % 97
		}
	}
	return fmt.Sprintf("%02d", 98-rem)
}

// mod97OK is the IBAN check of raw (no spaces).
func mod97OK(raw string) bool {
	return ibanCheck(raw[:2], raw[4:]) == raw[2:4]
}

func (p *PIIText) ibanRaw() string {
	r := p.rng
	var cc, bban string
	switch r.IntN(5) {
	case 0:
		cc, bban = "DE", digits(r, 18)
	case 1:
		cc, bban = "GB", pick(r, []string{"NWBK", "BARC", "HSBC"})+digits(r, 14)
	case 2:
		cc, bban = "FR", digits(r, 10)+"ABCDEFGHIJK"[r.IntN(11):][:1]+digits(r, 12)
	case 3:
		cc, bban = "NL", pick(r, []string{"ABNA", "INGB", "RABO"})+digits(r, 10)
	default:
		cc, bban = "ES", digits(r, 20)
	}
	return cc + ibanCheck(cc, bban) + bban
}

func (p *PIIText) iban() string {
	raw := p.ibanRaw()
	if p.rng.IntN(2) == 0 {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(raw[i:min(i+4, len(raw))])
	}
	return b.String()
}

func (p *PIIText) ipv6() string {
	r := p.rng
	g := make([]string, 8)
	for i := range g {
		g[i] = strconv.FormatUint(uint64(r.IntN(0x10000)), 16)
	}
	if r.IntN(2) == 0 {
		return "2001:db8:" + g[2] + "::" + g[7]
	}
	return strings.Join(g, ":")
}

var cnRegions = []string{"110101", "310115", "440305", "330106", "510104", "420102"}

func (p *PIIText) cnIDWith(validCheck bool) string {
	r := p.rng
	year := 1950 + r.IntN(56)
	month := 1 + r.IntN(12)
	day := 1 + r.IntN(28)
	body := fmt.Sprintf("%s%04d%02d%02d%03d", pick(r, cnRegions), year, month, day, r.IntN(1000))
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(body[i]-'0') * weights[i]
	}
	check := "10X98765432"[sum%11]
	if !validCheck {
		check = "10X98765432"[(sum+1+r.IntN(10))%11]
	}
	return body + string(check)
}

func (p *PIIText) cnID() string { return p.cnIDWith(true) }

// decoySentence writes a sentence with a value that looks like personal
// data but is not.
func (p *PIIText) decoySentence(zh bool) {
	r := p.rng
	switch r.IntN(8) {
	case 0: // a 16-digit order id that fails the Luhn check
		body := string("123456789"[r.IntN(9)]) + digits(r, 14)
		bad := byte('0' + (luhnDigit(body)-'0'+1+byte(r.IntN(9)))%10)
		p.lit(pick(r, pick2(zh, []string{"Order ", "order id ", "Your order "}, []string{"订单号", "订单 "})) + body + string(bad))
	case 1:
		p.lit(pick(r, pick2(zh, []string{"on ", "since ", "due "}, []string{"日期", "于"})) +
			fmt.Sprintf("%04d-%02d-%02d", 2020+r.IntN(6), 1+r.IntN(12), 1+r.IntN(28)))
	case 2:
		p.lit(pick(r, pick2(zh, []string{"at ", "around "}, []string{"时间", "在"})) +
			fmt.Sprintf("%02d:%02d:%02d", r.IntN(24), r.IntN(60), r.IntN(60)))
	case 3:
		p.lit(pick(r, pick2(zh, []string{"the amount was $", "total ", "refund of "}, []string{"金额", "共计¥"})) +
			fmt.Sprintf("%d,%03d.%02d", 1+r.IntN(99), r.IntN(1000), r.IntN(100)))
	case 4:
		p.lit(pick2(zh, []string{"app version "}, []string{"版本"})[0] + fmt.Sprintf("%d.%d.%d", r.IntN(10), r.IntN(30), r.IntN(100)))
	case 5: // an 18-digit id-like number with a wrong check digit
		p.lit(pick(r, pick2(zh, []string{"ticket ", "case number "}, []string{"工单号", "编号"})) + p.cnIDWith(false))
	case 6: // an IBAN-like string with a wrong check
		raw := p.ibanRaw()
		bad := raw
		for cd := int(raw[2]-'0')*10 + int(raw[3]-'0'); bad == raw || mod97OK(bad); {
			cd = (cd + 1 + r.IntN(9)) % 100
			bad = raw[:2] + fmt.Sprintf("%02d", cd) + raw[4:]
		}
		p.lit(pick2(zh, []string{"reference "}, []string{"参考号"})[0] + bad)
	default: // a tracking number
		p.lit(pick(r, pick2(zh, []string{"tracking ", "parcel "}, []string{"快递单号", "运单"})) + "SF" + digits(r, 12))
	}
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func pick2(zh bool, en, cn []string) []string {
	if zh {
		return cn
	}
	return en
}
