package ticket_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hothost/hothost/ticket"
)

var (
	key   = []byte("0123456789abcdef0123456789abcdef")
	other = []byte("fedcba9876543210fedcba9876543210")
	t0    = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
)

var sentinels = []error{ticket.ErrMissing, ticket.ErrMalformed, ticket.ErrSignature, ticket.ErrExpired,
	ticket.ErrNotYetValid, ticket.ErrOtherPlayer, ticket.ErrAlgorithm}

// sign signs claims with any method the library knows, for tickets the
// package itself would never mint.
func sign(t *testing.T, m jwt.SigningMethod, k any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs256 signs header and claims (raw JSON) with HMAC-SHA256 under k, whatever
// the header says: the alg-confusion forgery.
func hs256(k []byte, header, claims string) string {
	enc := base64.RawURLEncoding
	text := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(text))
	return text + "." + enc.EncodeToString(mac.Sum(nil))
}

func good() jwt.MapClaims {
	return jwt.MapClaims{"sub": "42", "exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix()}
}

func mint(t *testing.T, k []byte, player uint64, ttl time.Duration, now time.Time) string {
	t.Helper()
	s, err := ticket.Mint(k, player, ttl, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := good(); delete(c, k); return c }
	valid := mint(t, key, 42, time.Hour, t0)
	h, p, _ := strings.Cut(valid, ".")
	p, s, _ := strings.Cut(p, ".")
	otherSub := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"43","exp":` + "9999999999" + `}`))
	cases := []struct {
		name   string
		ticket string
		player uint64
		at     time.Time
		want   error // nil: accepted
	}{
		{"valid", valid, 42, t0, nil},
		{"valid until the last second", valid, 42, t0.Add(time.Hour - time.Nanosecond), nil},
		{"extra claims", sign(t, jwt.SigningMethodHS256, key, with("name", "Ada")), 42, t0, nil},
		{"nbf reached", sign(t, jwt.SigningMethodHS256, key, with("nbf", t0.Unix())), 42, t0, nil},

		{"missing", "", 42, t0, ticket.ErrMissing},

		{"not a JWT", "hello", 42, t0, ticket.ErrMalformed},
		{"garbage segments", "a.b.c", 42, t0, ticket.ErrMalformed},
		{"too long", valid + strings.Repeat("A", 5000), 42, t0, ticket.ErrMalformed},
		{"no exp", sign(t, jwt.SigningMethodHS256, key, without("exp")), 42, t0, ticket.ErrMalformed},
		{"exp a string", sign(t, jwt.SigningMethodHS256, key, with("exp", "tomorrow")), 42, t0, ticket.ErrMalformed},
		{"no sub", sign(t, jwt.SigningMethodHS256, key, without("sub")), 42, t0, ticket.ErrMalformed},
		{"sub a name", sign(t, jwt.SigningMethodHS256, key, with("sub", "ada")), 42, t0, ticket.ErrMalformed},
		{"sub a JSON number", sign(t, jwt.SigningMethodHS256, key, with("sub", 42)), 42, t0, ticket.ErrMalformed},
		{"sub zero-padded", sign(t, jwt.SigningMethodHS256, key, with("sub", "042")), 42, t0, ticket.ErrMalformed},
		{"sub zero", sign(t, jwt.SigningMethodHS256, key, with("sub", "0")), 0, t0, ticket.ErrMalformed},
		{"sub negative", sign(t, jwt.SigningMethodHS256, key, with("sub", "-42")), 42, t0, ticket.ErrMalformed},

		{"forged: other key", mint(t, other, 42, time.Hour, t0), 42, t0, ticket.ErrSignature},
		{"forged: claims changed", h + "." + otherSub + "." + s, 43, t0, ticket.ErrSignature},
		{"forged: signature cut", h + "." + p + ".", 42, t0, ticket.ErrSignature},
		{"forged and expired", mint(t, other, 42, time.Hour, t0), 42, t0.Add(2 * time.Hour), ticket.ErrSignature},
		{"forged and other player", mint(t, other, 43, time.Hour, t0), 42, t0, ticket.ErrSignature},

		{"expired at exp", valid, 42, t0.Add(time.Hour), ticket.ErrExpired},
		{"expired long ago", valid, 42, t0.Add(48 * time.Hour), ticket.ErrExpired},
		{"nbf ahead", sign(t, jwt.SigningMethodHS256, key, with("nbf", t0.Add(time.Minute).Unix())), 42, t0, ticket.ErrNotYetValid},
		{"iat ahead", sign(t, jwt.SigningMethodHS256, key, with("iat", t0.Add(time.Minute).Unix())), 42, t0, ticket.ErrNotYetValid},

		{"other player", valid, 43, t0, ticket.ErrOtherPlayer},

		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()), 42, t0, ticket.ErrAlgorithm},
		{"alg none, any case", hs256(key, `{"alg":"NONE","typ":"JWT"}`, `{"sub":"42","exp":9999999999}`), 42, t0, ticket.ErrAlgorithm},
		{"alg HS512 with the right key", sign(t, jwt.SigningMethodHS512, key, good()), 42, t0, ticket.ErrAlgorithm},
		{"alg HS384 with the right key", sign(t, jwt.SigningMethodHS384, key, good()), 42, t0, ticket.ErrAlgorithm},
		{"alg RS256, really RSA", sign(t, jwt.SigningMethodRS256, rsaKey, good()), 42, t0, ticket.ErrAlgorithm},
		// The classic confusion: the header says RS256 and the signature is
		// an HMAC under the shared key, hoping the verifier feeds the key
		// to whatever the header names.
		{"alg RS256 header, HMAC signature", hs256(key, `{"alg":"RS256","typ":"JWT"}`, `{"sub":"42","exp":9999999999}`), 42, t0, ticket.ErrAlgorithm},
		{"alg unknown", hs256(key, `{"alg":"HS999"}`, `{"sub":"42","exp":9999999999}`), 42, t0, ticket.ErrAlgorithm},
		{"alg absent", hs256(key, `{"typ":"JWT"}`, `{"sub":"42","exp":9999999999}`), 42, t0, ticket.ErrAlgorithm},
		{"alg not a string", hs256(key, `{"alg":256}`, `{"sub":"42","exp":9999999999}`), 42, t0, ticket.ErrAlgorithm},
	}
	v, err := ticket.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		err := v.Verify(c.ticket, c.player, c.at)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: refused: %v", c.name, err)
			}
			continue
		}
		t.Logf("%-35s %v", c.name, err)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			continue
		}
		for _, s := range sentinels {
			if s != c.want && errors.Is(err, s) {
				t.Errorf("%s: %v is also %q", c.name, err, s)
			}
		}
	}
}

func TestVerifyLeeway(t *testing.T) {
	v, err := ticket.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	v.Leeway = 30 * time.Second
	tk := mint(t, key, 7, time.Hour, t0)
	for _, c := range []struct {
		at   time.Time
		want error
	}{
		{t0.Add(-29 * time.Second), nil}, // the minting clock was ahead
		{t0.Add(-31 * time.Second), ticket.ErrNotYetValid},
		{t0.Add(time.Hour + 29*time.Second), nil},
		{t0.Add(time.Hour + 30*time.Second), ticket.ErrExpired},
	} {
		if err := v.Verify(tk, 7, c.at); !errors.Is(err, c.want) {
			t.Errorf("at %v: got %v, want %v", c.at.Sub(t0), err, c.want)
		}
	}
}

func TestMintRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		key    []byte
		player uint64
		ttl    time.Duration
		want   string
	}{
		{"short key", key[:31], 1, time.Hour, "31 bytes"},
		{"no key", nil, 1, time.Hour, "0 bytes"},
		{"player 0", key, 0, time.Hour, "player id 0"},
		{"sub-second ttl", key, 1, 999 * time.Millisecond, "under a second"},
		{"negative ttl", key, 1, -time.Hour, "under a second"},
	} {
		if s, err := ticket.Mint(c.key, c.player, c.ttl, t0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Mint = %q, %v; want an error saying %q", c.name, s, err, c.want)
		}
	}
	if _, err := ticket.NewVerifier(key[:16]); !errors.Is(err, ticket.ErrKey) {
		t.Errorf("NewVerifier(16 bytes) = %v, want ErrKey", err)
	}
}

// The Verifier keeps its own copy: a caller reusing its buffer cannot
// change what tickets are accepted.
func TestVerifierCopiesKey(t *testing.T) {
	k := append([]byte(nil), key...)
	v, err := ticket.NewVerifier(k)
	if err != nil {
		t.Fatal(err)
	}
	copy(k, other)
	if err := v.Verify(mint(t, key, 1, time.Hour, t0), 1, t0); err != nil {
		t.Fatalf("after the caller's buffer changed: %v", err)
	}
}

func TestMintClaims(t *testing.T) {
	tk := mint(t, key, 18446744073709551615, 90*time.Minute, t0.Add(500*time.Millisecond))
	var c jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(tk, &c, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithTimeFunc(func() time.Time { return t0 }))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["alg"] != "HS256" || c.Subject != "18446744073709551615" ||
		!c.IssuedAt.Equal(t0) || !c.ExpiresAt.Equal(t0.Add(90*time.Minute)) {
		t.Fatalf("header %v claims %+v", tok.Header, c)
	}
}

// Whatever a client sends as a ticket, Verify answers with exactly one of
// the sentinels, or accepts it only if it verifies under the key.
func FuzzVerify(f *testing.F) {
	valid, err := ticket.Mint(key, 42, time.Hour, t0)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{valid, "", "a.b.c", "..", valid + "x", valid[:len(valid)-1],
		hs256(key, `{"alg":"none"}`, `{"sub":"42","exp":9999999999}`),
		hs256(key, `{"alg":"HS256"}`, `{"sub":"42","exp":1e300}`),
		hs256(key, `{"alg":"HS256"}`, `{"sub":"42","exp":-1e300,"nbf":"x"}`),
		hs256(key, `{"alg":"HS256"}`, `{"sub":"18446744073709551616","exp":9999999999}`),
		hs256(key, `[]`, `{}`), hs256(key, `{"alg":"HS256"}`, `null`)} {
		f.Add(s, uint64(42))
	}
	v, err := ticket.NewVerifier(key)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tk string, player uint64) {
		err := v.Verify(tk, player, t0)
		n := 0
		for _, s := range sentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if err != nil && n != 1 {
			t.Fatalf("Verify(%q) = %v: wraps %d sentinels, want 1", tk, err, n)
		}
	})
}
