// Package phone normalises phone numbers given with a country code (with or without a
// leading "+") to E.164.
package phone

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Number is a normalised phone number.
type Number struct {
	// E164 is "+" and the digits: +919876543210.
	E164 string
	// Digits is E164 without "+", the form WhatsApp and channel user ids use.
	Digits string
}

// ErrInvalid wraps every reason a number is refused.
var ErrInvalid = errors.New("invalid phone number")

// Parse accepts "919876543210", "+919876543210", "+91 98765-43210", "(+91) 98765 43210".
// The number must carry a country code and have a possible length for that country.
// Numbers need not be assigned: IsPossibleNumber rather than IsValidNumber, because
// providers' test numbers (Meta's +1 555 ...) are not in the numbering plan.
func Parse(raw string) (Number, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return Number{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if len(s) > 32 {
		return Number{}, fmt.Errorf("%w: too long", ErrInvalid)
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && b.Len() == 0 && (i == 0 || strings.TrimLeft(s[:i], "( ") == ""):
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return Number{}, fmt.Errorf("%w: %q has a character that is not a digit", ErrInvalid, raw)
		}
	}
	digits := strings.TrimPrefix(b.String(), "00") // international call prefix instead of "+"
	if len(digits) < 8 || len(digits) > 15 {
		return Number{}, fmt.Errorf("%w: %q should be a country code and number, 8 to 15 digits", ErrInvalid, raw)
	}
	num, err := phonenumbers.Parse("+"+digits, "")
	if err != nil {
		return Number{}, fmt.Errorf("%w: %q: %v", ErrInvalid, raw, err)
	}
	if phonenumbers.GetRegionCodeForCountryCode(int(num.GetCountryCode())) == "ZZ" {
		return Number{}, fmt.Errorf("%w: %q does not start with a known country code", ErrInvalid, raw)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return Number{}, fmt.Errorf("%w: %q has the wrong length for country code +%d", ErrInvalid, raw, num.GetCountryCode())
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	if e164 != "+"+digits {
		// The library rewrote the digits (a trunk "0" after the country code, say). Accept
		// the rewrite only if it is final: malformed input like +49 0000... would otherwise
		// lose another digit every time it is parsed again.
		again, err := phonenumbers.Parse(e164, "")
		if err != nil || phonenumbers.Format(again, phonenumbers.E164) != e164 {
			return Number{}, fmt.Errorf("%w: %q is not a usable number for country code +%d", ErrInvalid, raw, num.GetCountryCode())
		}
	}
	if n := len(e164) - 1; n < 8 || n > 15 {
		return Number{}, fmt.Errorf("%w: %q is too short once its trunk prefix is removed", ErrInvalid, raw)
	}
	return Number{E164: e164, Digits: e164[1:]}, nil
}
