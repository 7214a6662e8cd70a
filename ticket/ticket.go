// Package ticket owns hothost's signed login tickets: minting and verifying
// them (HS256 JWTs carrying a player id and an expiry), the key file they
// are signed with, and the per-address limit on failed logins.
//
// A ticket is issued by the game's account service, which shares the key
// file with the host; `hotctl ticket` mints one for tests and operators.
// Its claims are `sub` (the player id in decimal), `exp`, and optionally
// `iat` and `nbf`. Nothing but HS256 is accepted: a ticket's header cannot
// choose how it is checked.
//
// The package never reads the clock (every time is passed in, so the gateway
// and the tests decide what "now" is), never logs, and knows nothing about
// connections, sessions or the game: a player is a uint64.
package ticket

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The reasons a login ticket is refused. Verify wraps exactly one of them,
// with the detail after it, so the gateway can branch on the reason with
// errors.Is and show the detail to the client.
var (
	// ErrMissing means the login carried no ticket.
	ErrMissing = errors.New("no ticket")
	// ErrMalformed means the ticket is not a well-formed ticket: not a
	// JWT, or a required claim (sub, exp) is absent or of the wrong form.
	ErrMalformed = errors.New("malformed ticket")
	// ErrSignature means the signature does not match: the ticket was not
	// signed with the host's key, or was changed after signing.
	ErrSignature = errors.New("bad ticket signature")
	// ErrExpired means the ticket's exp has passed.
	ErrExpired = errors.New("ticket expired")
	// ErrNotYetValid means the ticket's nbf or iat lies in the future.
	ErrNotYetValid = errors.New("ticket not valid yet")
	// ErrOtherPlayer means the ticket is valid, but for another player
	// than the one logging in.
	ErrOtherPlayer = errors.New("ticket is for another player")
	// ErrAlgorithm means the ticket's header names another algorithm
	// than HS256 (none, RS256, HS512, ...). Accepting it would let the
	// header choose how the ticket is checked.
	ErrAlgorithm = errors.New("ticket algorithm is not HS256")
	// ErrKey means a key is unusable: too short, or a key file that is
	// not a private regular file.
	ErrKey = errors.New("unusable ticket key")
)

// KeySize is the length of a generated key, and the least a key may have:
// HMAC-SHA256 gains nothing from more and loses strength with less.
const KeySize = 32

// maxTicket bounds the work a ticket from outside can cost. A real one is
// about 150 bytes.
const maxTicket = 4096

// claims is what a ticket carries.
type claims = jwt.RegisteredClaims

// Mint returns a ticket for player, valid from now for ttl, signed with key.
// ttl is at least a second: exp is in whole seconds.
func Mint(key []byte, player uint64, ttl time.Duration, now time.Time) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if player == 0 {
		return "", errors.New("ticket: mint: player id 0 is not a player")
	}
	if ttl < time.Second {
		return "", fmt.Errorf("ticket: mint: ttl %v is under a second (exp is in whole seconds)", ttl)
	}
	c := claims{
		Subject:   strconv.FormatUint(player, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("ticket: mint: %w", err)
	}
	return s, nil
}

// Verifier checks tickets against one key. It is safe for concurrent use.
type Verifier struct {
	key []byte
	// Leeway is the clock difference tolerated between the service that
	// minted a ticket and the host, on exp, nbf and iat. Zero by default;
	// set it before the first Verify.
	Leeway time.Duration
}

// NewVerifier returns a Verifier for key (copied).
func NewVerifier(key []byte) (*Verifier, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return &Verifier{key: append([]byte(nil), key...)}, nil
}

// Verify checks that ticket is signed with the Verifier's key using HS256,
// is valid at now, and names player. The error wraps one of ErrMissing,
// ErrMalformed, ErrAlgorithm, ErrSignature, ErrExpired, ErrNotYetValid or
// ErrOtherPlayer. The signature is checked before any claim, so a forged
// ticket is reported as forged whatever it claims.
func (v *Verifier) Verify(ticket string, player uint64, now time.Time) error {
	switch {
	case ticket == "":
		return ErrMissing
	case len(ticket) > maxTicket:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(ticket), maxTicket)
	}
	var c claims
	p := jwt.NewParser(
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithLeeway(v.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	)
	if t, err := p.ParseWithClaims(ticket, &c, v.keyFor); err != nil {
		return reason(t, &c, err)
	}
	id, err := strconv.ParseUint(c.Subject, 10, 64)
	if err != nil || id == 0 || strconv.FormatUint(id, 10) != c.Subject {
		return fmt.Errorf("%w: sub %q is not a player id", ErrMalformed, c.Subject)
	}
	if id != player {
		return fmt.Errorf("%w: it names player %d, not %d", ErrOtherPlayer, id, player)
	}
	return nil
}

// keyFor refuses every algorithm but HS256 before the signature is checked:
// with `none` there is nothing to check, and an asymmetric algorithm would
// treat the shared key as a public key anyone may hold.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if t.Method != jwt.SigningMethodHS256 {
		return nil, ErrAlgorithm
	}
	return v.key, nil
}

// reason maps the library's error for token t, whose claims decoded into c
// as far as they could, to the package's sentinel and a detail in the
// package's words.
func reason(t *jwt.Token, c *claims, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// keyFor's refusal, or an alg that is absent or unknown to the
		// library: the header parsed, so t holds it.
		if t != nil {
			if alg, ok := t.Header["alg"].(string); ok {
				return fmt.Errorf("%w: alg %q", ErrAlgorithm, alg)
			}
		}
		return fmt.Errorf("%w: the header names no alg", ErrAlgorithm)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp was %s", ErrExpired, stamp(c.ExpiresAt))
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is %s", ErrNotYetValid, stamp(c.NotBefore))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return fmt.Errorf("%w: iat is %s", ErrNotYetValid, stamp(c.IssuedAt))
	}
	// Not a JWT, or a claim absent or of the wrong type: the library's
	// detail without its own category words.
	detail := err.Error()
	for _, e := range []error{jwt.ErrTokenMalformed, jwt.ErrTokenInvalidClaims, jwt.ErrTokenRequiredClaimMissing} {
		detail = strings.TrimPrefix(detail, e.Error()+": ")
	}
	return fmt.Errorf("%w: %s", ErrMalformed, detail)
}

func stamp(d *jwt.NumericDate) string { return d.UTC().Format(time.RFC3339) }

func checkKey(key []byte) error {
	if len(key) < KeySize {
		return fmt.Errorf("ticket: %w: %d bytes, want at least %d", ErrKey, len(key), KeySize)
	}
	return nil
}
