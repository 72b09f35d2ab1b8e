package textpii_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/driftline/driftline/stages/textpii"
)

func scan(t *testing.T, cfg textpii.Config, text string) []string {
	t.Helper()
	sc, err := textpii.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range sc.Scan(nil, text) {
		out = append(out, string(f.Type)+":"+text[f.Start:f.End])
	}
	return out
}

func TestRecognizers(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{"mail bob.smith+x@mail.example.co.uk.", []string{"email:bob.smith+x@mail.example.co.uk"}},
		{"请发邮件到13812345678@qq.com，谢谢", []string{"email:13812345678@qq.com"}},
		{"not an email: a@b, x@y.z1, @example.com", nil},
		{"我的手机号是13812345678。", []string{"phone:13812345678"}},
		{"call +86 138 1234 5678 or (415) 555-0134 or 415.555.0134", []string{"phone:+86 138 1234 5678", "phone:(415) 555-0134", "phone:415.555.0134"}},
		{"UK 020 7946 0958, DE +49 30 12345678", []string{"phone:020 7946 0958", "phone:+49 30 12345678"}},
		{"card 4111 1111 1111 1111 and 4111-1111-1111-1111 and 378282246310005", []string{"payment_card:4111 1111 1111 1111", "payment_card:4111-1111-1111-1111", "payment_card:378282246310005"}},
		{"order 4111111111111112 fails Luhn", nil},
		{"IBAN GB82 WEST 1234 5698 7654 32 and DE89370400440532013000", []string{"iban:GB82 WEST 1234 5698 7654 32", "iban:DE89370400440532013000"}},
		{"IBAN GB83 WEST 1234 5698 7654 32 has a wrong check", nil},
		{"from 192.168.0.1, 2001:db8::8a2e:370:7334 and ::1.", []string{"ip_address:192.168.0.1", "ip_address:2001:db8::8a2e:370:7334", "ip_address:::1"}},
		{"version 1.2.3, time 12:30:45, 999.1.1.1", nil},
		{"身份证号11010519491231002X。", []string{"cn_resident_id:11010519491231002X"}},
		{"bad date 110105194902300027, bad check 110105194912310021", nil},
		{"dates 2024-01-15 and amounts 1,234.56 stay", nil},
		{"inside tokens: ID4111111111111111 abc13812345678", nil},
	}
	for _, c := range cases {
		got := scan(t, textpii.Config{}, c.text)
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%q:\n got %q\nwant %q", c.text, got, c.want)
		}
	}
}

func TestTypesSelectAndCustom(t *testing.T) {
	cfg := textpii.Config{
		Types: []textpii.Type{textpii.Email},
		Custom: []textpii.Custom{
			{Name: "imei", Pattern: `\b\d{15}\b`, Validator: textpii.ValidateLuhn},
			{Name: "employee_id", Pattern: `EMP-\d{6}`},
		},
	}
	got := scan(t, cfg, "a@example.com EMP-123456 imei 490154203237518 and 490154203237519, 13812345678")
	want := "email:a@example.com|employee_id:EMP-123456|imei:490154203237518"
	if strings.Join(got, "|") != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []textpii.Config{
		{Types: []textpii.Type{"ssn"}},
		{Types: []textpii.Type{textpii.Email, textpii.Email}},
		{Custom: []textpii.Custom{{Name: "Bad Name", Pattern: "x"}}},
		{Custom: []textpii.Custom{{Name: "email", Pattern: "x"}}},
		{Custom: []textpii.Custom{{Name: "x", Pattern: "("}}},
		{Custom: []textpii.Custom{{Name: "x", Pattern: "a*"}}},
		{Custom: []textpii.Custom{{Name: "x", Pattern: "a", Validator: "crc"}}},
	}
	for _, c := range bad {
		if _, err := textpii.New(c); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
}

var benchText = "Hi, I ordered the blue jacket last week and it still has not arrived. 我上周订的外套还没有到，请帮我查一下物流。 Order placed on 2024-03-15 for 1,299.00, app version 4.2.1."

// BenchmarkScanNoFinding is the hot path of a row without personal data:
// zero allocations.
func BenchmarkScanNoFinding(b *testing.B) {
	sc, _ := textpii.New(textpii.Config{})
	fs := make([]textpii.Finding, 0, 8)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchText)))
	for b.Loop() {
		fs = sc.Scan(fs[:0], benchText)
	}
	if len(fs) != 0 {
		b.Fatalf("findings %v", fs)
	}
}

// BenchmarkScanCorpus scans the whole labelled corpus per op; the
// Presidio comparison (scripts/bench-pii-presidio.sh) reads its ns/op.
func BenchmarkScanCorpus(b *testing.B) {
	lines := loadCorpus(b)
	sc, _ := textpii.New(textpii.Config{})
	fs := make([]textpii.Finding, 0, 8)
	var bytes int64
	for _, l := range lines {
		bytes += int64(len(l.Text))
	}
	b.SetBytes(bytes)
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			fs = sc.Scan(fs[:0], l.Text)
		}
	}
	b.ReportMetric(float64(len(lines)), "lines/op")
}

func TestScanNoFindingAllocatesNothing(t *testing.T) {
	sc, _ := textpii.New(textpii.Config{})
	fs := make([]textpii.Finding, 0, 8)
	if n := testing.AllocsPerRun(100, func() { fs = sc.Scan(fs[:0], benchText) }); n != 0 {
		t.Fatalf("%v allocations per scan", n)
	}
}

// validIPv6 agrees with net/netip on addresses and near misses.
func TestIPv6AgreesWithNetip(t *testing.T) {
	for _, s := range []string{"::", "::1", "1::", "2001:db8::1", "2001:db8:0:0:0:0:2:1", "::ffff:192.0.2.1", "64:ff9b::192.0.2.33",
		"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1::2::3", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", "12345::1",
		"::ffff:256.0.0.1", "::ffff:1.2.3", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "g::1", "12:30:45"} {
		_, err := netip.ParseAddr(s)
		got := len(scan(t, textpii.Config{Types: []textpii.Type{textpii.IPAddress}}, "x "+s+" y")) == 1
		if got != (err == nil) {
			t.Errorf("%q: found %v, netip parses %v", s, got, err == nil)
		}
	}
}
