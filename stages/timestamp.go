package stages

import (
	"time"
	"unsafe"
)

// parseTimestampMicros parses an RFC 3339 timestamp into microseconds since
// the Unix epoch, as time.Parse(time.RFC3339Nano, s) followed by UnixMicro
// does. The form producers write, YYYY-MM-DDTHH:MM:SS[.f…]Z with 1 to 9
// fraction digits, is read directly; any other form (offsets, lower-case
// letters, out-of-range fields) goes to time.Parse, which decides.
func parseTimestampMicros(b []byte) (int64, bool) {
	if us, ok := parseUTCTimestamp(b); ok {
		return us, true
	}
	t, err := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(b), len(b)))
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// parseUTCTimestamp reads YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z with every field in
// range; it returns false for anything else.
func parseUTCTimestamp(b []byte) (int64, bool) {
	if !utcShape(b) {
		return 0, false
	}
	days, ok := parseUTCDate(b)
	if !ok {
		return 0, false
	}
	return utcMicros(days, b)
}

// utcShape checks the separators of YYYY-MM-DDTHH:MM:SS…Z.
func utcShape(b []byte) bool {
	return len(b) >= 20 && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' && b[len(b)-1] == 'Z'
}

// digits reads b[i:i+n] as a decimal number; false when one is not a digit.
func digits(b []byte, i, n int) (int, bool) {
	v := 0
	for _, c := range b[i : i+n] {
		if c-'0' > 9 {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseUTCDate reads the date of a timestamp that utcShape accepts as its
// days since 1970-01-01; false when a field is not digits or out of range.
func parseUTCDate(b []byte) (int64, bool) {
	year, ok1 := digits(b, 0, 4)
	month, ok2 := digits(b, 5, 2)
	day, ok3 := digits(b, 8, 2)
	if !(ok1 && ok2 && ok3) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return 0, false
	}
	return daysFromCivil(year, month, day), true
}

// utcMinute reads the hour and minute of a timestamp that utcShape
// accepts, as seconds into its day.
func utcMinute(b []byte) (int64, bool) {
	hour, ok1 := digits(b, 11, 2)
	minute, ok2 := digits(b, 14, 2)
	if !(ok1 && ok2) || hour > 23 || minute > 59 {
		return 0, false
	}
	return int64(hour*3600 + minute*60), true
}

// utcSeconds reads the seconds and fraction of a timestamp that utcShape
// accepts, in microseconds, truncated as time.Time.UnixMicro truncates.
func utcSeconds(b []byte) (int64, bool) {
	sec, ok := digits(b, 17, 2)
	if !ok || sec > 59 {
		return 0, false
	}
	nanos := 0
	if rest := b[19 : len(b)-1]; len(rest) > 0 {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return 0, false
		}
		f, ok := digits(b, 20, len(rest)-1)
		if !ok {
			return 0, false
		}
		nanos = f * int(pow10[10-len(rest)])
	}
	return int64(sec)*1e6 + int64(nanos/1000), true
}

// utcMicros reads the time of day of a timestamp that utcShape accepts
// and returns it in microseconds since the epoch, days being its date's.
func utcMicros(days int64, b []byte) (int64, bool) {
	min, ok1 := utcMinute(b)
	us, ok2 := utcSeconds(b)
	if !(ok1 && ok2) {
		return 0, false
	}
	return (days*86400+min)*1e6 + us, true
}

// timestampReader is parseTimestampMicros with the minute of the last
// timestamp it read directly remembered: a producer's timestamps mostly
// share their date, hour and minute with the previous one, so the calendar
// arithmetic is done once per minute instead of once per value. The zero
// value is ready; it is not safe for concurrent use.
type timestampReader struct {
	minute [16]byte // the last minute read directly, YYYY-MM-DDTHH:MM
	start  int64    // its first microsecond since the epoch
	have   bool
}

// micros is parseTimestampMicros(b).
func (r *timestampReader) micros(b []byte) (int64, bool) {
	if utcShape(b) {
		if !r.have || [16]byte(b) != r.minute {
			days, ok1 := parseUTCDate(b)
			min, ok2 := utcMinute(b)
			if !(ok1 && ok2) {
				return parseTimestampMicros(b)
			}
			r.minute, r.start, r.have = [16]byte(b), (days*86400+min)*1e6, true
		}
		if us, ok := utcSeconds(b); ok {
			return r.start + us, true
		}
	}
	return parseTimestampMicros(b)
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's days_from_civil).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
