package gateway

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// testNow is the fixed clock every test verifier reads.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa      *rsa.PrivateKey
	rsaOther *rsa.PrivateKey
	ed       ed25519.PrivateKey
	edOther  ed25519.PrivateKey
	pemFile  string // PKIX blocks for rsa and ed
	rsaPEM   []byte // the RSA public key's PEM bytes, for the confusion attack
}

var keys = func() *testKeys {
	var k testKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	if _, k.edOther, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	k.rsaPEM = pemPKIX(k.rsa.Public())
	return &k
}()

func pemPKIX(pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeFile(t testing.TB, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// keyFile writes the RSA key (PKCS #1), a comment and the Ed25519 key (PKIX).
func keyFile(t testing.TB) string {
	t.Helper()
	var b []byte
	b = append(b, "# presence signing keys\n"...)
	b = append(b, pem.EncodeToMemory(&pem.Block{
		Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&keys.rsa.PublicKey),
	})...)
	b = append(b, pemPKIX(keys.ed.Public())...)
	return writeFile(t, b)
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestVerifier(t testing.TB, cfg AuthConfig) *Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// unsigned builds a token with the given header and claims and an arbitrary
// signature, for attacks the jwt package would refuse to sign.
func unsigned(header, claims, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + sig
}

func TestVerify(t *testing.T) {
	hs := newTestVerifier(t, AuthConfig{HS256Secret: testSecret, Leeway: 5 * time.Second})
	pk := newTestVerifier(t, AuthConfig{PublicKeyFile: keyFile(t)})
	both := newTestVerifier(t, AuthConfig{HS256Secret: testSecret, PublicKeyFile: keyFile(t)})

	exp := testNow.Add(time.Hour)
	good := jwt.MapClaims{"sub": "alice", "exp": exp.Unix()}
	with := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	noneTok := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good)

	tests := []struct {
		name    string
		v       *Verifier
		token   string
		wantErr error
		want    Identity
	}{
		{"hs256 good", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), good), nil,
			Identity{User: "alice", ExpiresAt: exp}},
		{"hs256 no exp", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "bob")), nil,
			Identity{User: "bob"}},
		{"hs256 wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("not the secret"), good), ErrBadToken, Identity{}},
		{"hs256 tampered payload", hs, func() string {
			tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), good)
			parts := strings.Split(tok, ".")
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory"}`))
			return strings.Join(parts, ".")
		}(), ErrBadToken, Identity{}},
		{"hs256 expired", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret),
			with("sub", "alice", "exp", testNow.Add(-time.Minute).Unix())), ErrExpired, Identity{}},
		{"hs256 expired within leeway", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret),
			with("sub", "alice", "exp", testNow.Add(-2*time.Second).Unix())), nil,
			Identity{User: "alice", ExpiresAt: testNow.Add(-2 * time.Second)}},
		{"hs256 nbf future", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret),
			with("sub", "alice", "nbf", testNow.Add(time.Minute).Unix())), ErrBadToken, Identity{}},
		{"hs256 nbf within leeway", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret),
			with("sub", "alice", "nbf", testNow.Add(3*time.Second).Unix())), nil, Identity{User: "alice"}},
		{"missing sub", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("exp", exp.Unix())), ErrBadToken, Identity{}},
		{"empty sub", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "")), ErrBadToken, Identity{}},
		{"sub not a string", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", 42)), ErrBadToken, Identity{}},
		{"sub 128 bytes", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", strings.Repeat("u", 128))), nil,
			Identity{User: strings.Repeat("u", 128)}},
		{"sub 129 bytes", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", strings.Repeat("u", 129))), ErrBadToken, Identity{}},
		{"alg none", hs, noneTok, ErrBadToken, Identity{}},
		{"alg none on key verifier", pk, noneTok, ErrBadToken, Identity{}},
		{"alg none hand made", both, unsigned(`{"alg":"none","typ":"JWT"}`, `{"sub":"alice"}`, ""), ErrBadToken, Identity{}},
		{"alg unknown", hs, unsigned(`{"alg":"XX256","typ":"JWT"}`, `{"sub":"alice"}`, "c2ln"), ErrBadToken, Identity{}},
		{"alg confusion, keys only", pk, sign(t, jwt.SigningMethodHS256, keys.rsaPEM, good), ErrBadToken, Identity{}},
		{"alg confusion, keys and secret", both, sign(t, jwt.SigningMethodHS256, keys.rsaPEM, good), ErrBadToken, Identity{}},
		{"rs256 on hs verifier", hs, sign(t, jwt.SigningMethodRS256, keys.rsa, good), ErrBadToken, Identity{}},
		{"rs256 good", pk, sign(t, jwt.SigningMethodRS256, keys.rsa, good), nil, Identity{User: "alice", ExpiresAt: exp}},
		{"rs256 good, both", both, sign(t, jwt.SigningMethodRS256, keys.rsa, good), nil, Identity{User: "alice", ExpiresAt: exp}},
		{"rs256 other key", pk, sign(t, jwt.SigningMethodRS256, keys.rsaOther, good), ErrBadToken, Identity{}},
		{"ps256 not accepted", pk, sign(t, jwt.SigningMethodPS256, keys.rsa, good), ErrBadToken, Identity{}},
		{"rs512 not accepted", pk, sign(t, jwt.SigningMethodRS512, keys.rsa, good), ErrBadToken, Identity{}},
		{"rs256 expired", pk, sign(t, jwt.SigningMethodRS256, keys.rsa,
			with("sub", "alice", "exp", testNow.Add(-time.Second).Unix())), ErrExpired, Identity{}},
		{"eddsa good", pk, sign(t, jwt.SigningMethodEdDSA, keys.ed, good), nil, Identity{User: "alice", ExpiresAt: exp}},
		{"eddsa other key", pk, sign(t, jwt.SigningMethodEdDSA, keys.edOther, good), ErrBadToken, Identity{}},
		{"eddsa on hs verifier", hs, sign(t, jwt.SigningMethodEdDSA, keys.ed, good), ErrBadToken, Identity{}},
		{"empty token", hs, "", ErrNoToken, Identity{}},
		{"garbage", hs, "not.a.jwt", ErrBadToken, Identity{}},
		{"two segments", hs, "abc.def", ErrBadToken, Identity{}},
		{"oversize", hs, strings.Repeat("a", maxTokenBytes+1), ErrBadToken, Identity{}},
		{"caps", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "alice",
			"caps", map[string]any{"enter": []string{"team-*"}, "subscribe": []string{"*"}})), nil,
			Identity{User: "alice", Caps: Caps{Enter: []string{"team-*"}, Subscribe: []string{"*"}}}},
		{"caps empty list", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "alice",
			"caps", map[string]any{"enter": []string{}})), nil,
			Identity{User: "alice", Caps: Caps{Enter: []string{}}}},
		{"caps null", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "alice", "caps", nil)), nil,
			Identity{User: "alice"}},
		{"caps not an object", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "alice", "caps", "all")), ErrBadToken, Identity{}},
		{"caps list not a list", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "alice",
			"caps", map[string]any{"enter": "team-*"})), ErrBadToken, Identity{}},
		{"caps pattern not a string", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "alice",
			"caps", map[string]any{"enter": []any{1}})), ErrBadToken, Identity{}},
		{"caps unknown key", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), with("sub", "alice",
			"caps", map[string]any{"subscibe": []string{"x"}})), ErrBadToken, Identity{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.v.Verify(tt.token)
			if tt.wantErr != nil {
				t.Logf("error: %v", err)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
				}
				if !reflect.DeepEqual(got, Identity{}) {
					t.Fatalf("Verify returned identity %+v with error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !got.ExpiresAt.Equal(tt.want.ExpiresAt) {
				t.Fatalf("ExpiresAt = %v, want %v", got.ExpiresAt, tt.want.ExpiresAt)
			}
			got.ExpiresAt, tt.want.ExpiresAt = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Verify = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVerifyErrorReasons(t *testing.T) {
	hs := newTestVerifier(t, AuthConfig{HS256Secret: testSecret})
	_, err := hs.Verify(sign(t, jwt.SigningMethodRS256, keys.rsa, jwt.MapClaims{"sub": "a"}))
	if err == nil || !strings.Contains(err.Error(), `"RS256" not accepted`) {
		t.Fatalf("err = %v, want the algorithm named", err)
	}
	_, err = hs.Verify(sign(t, jwt.SigningMethodHS256, []byte(testSecret),
		jwt.MapClaims{"sub": "a", "exp": testNow.Add(-time.Hour).Unix()}))
	if err == nil || !strings.HasPrefix(err.Error(), ErrExpired.Error()+": ") {
		t.Fatalf("err = %v, want %q with a reason", err, ErrExpired)
	}
}

func TestVerifierClockIsInjected(t *testing.T) {
	now := testNow
	v := newTestVerifier(t, AuthConfig{HS256Secret: testSecret, Now: func() time.Time { return now }})
	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret),
		jwt.MapClaims{"sub": "a", "exp": testNow.Add(time.Minute).Unix()})
	if _, err := v.Verify(tok); err != nil {
		t.Fatal(err)
	}
	now = testNow.Add(2 * time.Minute)
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("after the clock moved: err = %v, want ErrExpired", err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty file", nil, "no PEM public key"},
		{"text only", []byte("hello\n"), "no PEM public key"},
		{"private key block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "unsupported PEM type"},
		{"certificate block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), "unsupported PEM type"},
		{"corrupt key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}), "block 1"},
		{"weak rsa", pemPKIX(weak.Public()), "1024 bits"},
		{"ecdsa", pemPKIX(ec.Public()), "unsupported key type"},
		{"good then bad", append(pemPKIX(keys.ed.Public()), pemPKIX(weak.Public())...), "block 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(AuthConfig{PublicKeyFile: writeFile(t, tt.file)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := NewVerifier(AuthConfig{PublicKeyFile: filepath.Join(t.TempDir(), "missing.pem")}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v", err)
	}
	if _, err := NewVerifier(AuthConfig{HS256Secret: testSecret, Leeway: -time.Second}); err == nil {
		t.Fatal("negative leeway accepted")
	}
}

func TestOpen(t *testing.T) {
	open := newTestVerifier(t, AuthConfig{})
	if !open.Open() {
		t.Fatal("zero config: Open() = false")
	}
	if _, err := open.Verify(sign(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"sub": "a"})); !errors.Is(err, ErrBadToken) {
		t.Fatalf("open verifier accepted a token: %v", err)
	}
	if _, err := open.Verify(""); !errors.Is(err, ErrNoToken) {
		t.Fatalf("empty token: %v", err)
	}
	if newTestVerifier(t, AuthConfig{HS256Secret: testSecret}).Open() {
		t.Fatal("with secret: Open() = true")
	}
	if newTestVerifier(t, AuthConfig{PublicKeyFile: keyFile(t)}).Open() {
		t.Fatal("with key file: Open() = true")
	}
}

func TestCaps(t *testing.T) {
	all := Caps{}
	if !all.CanEnter("x") || !all.CanSubscribe("") {
		t.Fatal("nil lists must allow every room")
	}
	none := Caps{Enter: []string{}, Subscribe: []string{}}
	if none.CanEnter("x") || none.CanSubscribe("x") {
		t.Fatal("empty lists must allow no room")
	}
	c := Caps{Enter: []string{"team-*", "lobby"}, Subscribe: []string{"doc:*:chat"}}
	for _, tt := range []struct {
		room           string
		enter, watchOK bool
	}{
		{"team-a", true, false},
		{"team-", true, false},
		{"lobby", true, false},
		{"lobby2", false, false},
		{"doc:42:chat", false, true},
		{"doc::chat", false, true},
		{"doc:42:chat2", false, false},
	} {
		if got := c.CanEnter(tt.room); got != tt.enter {
			t.Errorf("CanEnter(%q) = %v, want %v", tt.room, got, tt.enter)
		}
		if got := c.CanSubscribe(tt.room); got != tt.watchOK {
			t.Errorf("CanSubscribe(%q) = %v, want %v", tt.room, got, tt.watchOK)
		}
	}
}

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything at all", true},
		{"**", "", true},
		{"***", "abc", true},
		{"a", "a", true},
		{"a", "A", false},
		{"a", "ab", false},
		{"team-*", "team-", true},
		{"team-*", "team-red", true},
		{"team-*", "tea", false},
		{"team-*", "xteam-red", false},
		{"*-chat", "doc-chat", true},
		{"*-chat", "doc-chat2", false},
		{"doc:*:chat", "doc:1:chat", true},
		{"doc:*:chat", "doc:chat", false},
		{"doc:*:chat", "doc::chat", true},
		{"doc:*:chat", "doc:a:b:chat", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "abbbc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "ab", false},
		{"a*b*c", "abcabc", true},
		{"a*b*c", "abcab", false},
		{"a*a", "a", false}, // prefix and suffix must not overlap
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"*a*", "bab", true},
		{"*a*", "bbb", false},
		{"*ab*ab*", "abab", true},
		{"*ab*ab*", "aba", false},
		{"x*y*z", "xyzyz", true},
		{"\u00e9*", "\u00e9t\u00e9", true},
	}
	for _, tt := range tests {
		if got := MatchPattern(tt.pattern, tt.s); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
		if got := matchReference(tt.pattern, tt.s); got != tt.want {
			t.Errorf("reference(%q, %q) = %v, want %v (test table wrong?)", tt.pattern, tt.s, got, tt.want)
		}
	}
}

// TestMatchPatternAdversarial checks patterns that make naive backtracking
// matchers take exponential (or quadratic-per-star) time.
func TestMatchPatternAdversarial(t *testing.T) {
	long := strings.Repeat("a", 100_000)
	pattern := strings.Repeat("*a", 1000) + "*b"
	start := time.Now()
	for range 10 {
		if MatchPattern(pattern, long) {
			t.Fatal("matched a string without b")
		}
		if !MatchPattern(strings.Repeat("a*", 1000), long) {
			t.Fatal("a*a*... did not match a run of a")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("20 adversarial matches took %v", d)
	}
}

// matchReference is the obvious dynamic-programming matcher, O(len(p)*len(s)).
func matchReference(p, s string) bool {
	// prev[j] reports whether p[:i] matches s[:j]; cur is row i+1.
	prev, cur := make([]bool, len(s)+1), make([]bool, len(s)+1)
	prev[0] = true
	for i := 0; i < len(p); i++ {
		cur[0] = p[i] == '*' && prev[0]
		for j := 1; j <= len(s); j++ {
			if p[i] == '*' {
				cur[j] = prev[j] || cur[j-1]
			} else {
				cur[j] = prev[j-1] && p[i] == s[j-1]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(s)]
}

func FuzzMatchPattern(f *testing.F) {
	for _, seed := range [][2]string{
		{"", ""}, {"*", ""}, {"a*b*c", "abc"}, {"doc:*:chat", "doc:1:chat"},
		{"*a*a*", "aaa"}, {"ab*ba", "aba"}, {"team-*", "team-red"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		got := MatchPattern(pattern, s)
		if MatchPattern("*", s) != true {
			t.Fatalf("* did not match %q", s)
		}
		if !strings.Contains(pattern, "*") && got != (pattern == s) {
			t.Fatalf("MatchPattern(%q, %q) = %v for a literal pattern", pattern, s, got)
		}
		if !strings.Contains(s, "*") && !MatchPattern(s, s) {
			t.Fatalf("%q does not match itself", s)
		}
		// The reference is quadratic; keep it to inputs where that is cheap
		// even with fuzzing instrumentation.
		if len(pattern)*len(s) <= 4096 {
			if want := matchReference(pattern, s); got != want {
				t.Fatalf("MatchPattern(%q, %q) = %v, reference says %v", pattern, s, got, want)
			}
		}
	})
}

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name   string
		header string
		query  string
		cookie string
		want   string
	}{
		{"none", "", "", "", ""},
		{"header", "Bearer h", "", "", "h"},
		{"header lower-case scheme", "bearer h", "", "", "h"},
		{"header wins", "Bearer h", "q", "c", "h"},
		{"query before cookie", "", "q", "c", "q"},
		{"cookie", "", "", "c", "c"},
		{"basic auth ignored", "Basic dXNlcjpwYXNz", "q", "", "q"},
		{"empty bearer ignored", "Bearer ", "", "c", "c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "/v1/connect"
			if tt.query != "" {
				target += "?token=" + tt.query
			}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "presence_token", Value: tt.cookie})
			}
			if got := TokenFromRequest(r); got != tt.want {
				t.Fatalf("TokenFromRequest = %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	v := newTestVerifier(b, AuthConfig{HS256Secret: testSecret})
	tok := sign(b, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{
		"sub": "alice", "exp": testNow.Add(time.Hour).Unix(),
		"caps": map[string]any{"enter": []string{"team-*"}},
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatchPattern(b *testing.B) {
	for b.Loop() {
		MatchPattern("doc:*:chat", "doc:4f9a1c2e-77aa:chat")
	}
}
