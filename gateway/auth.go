package gateway

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Authentication errors. Verify wraps one of them with a short reason, so
// callers test with errors.Is and may show the message to the client.
var (
	ErrNoToken  = errors.New("auth: no token")
	ErrBadToken = errors.New("auth: invalid token")
	ErrExpired  = errors.New("auth: token expired")
)

const (
	// maxSubjectBytes bounds the "sub" claim, which becomes the user ID seen
	// by every other client in a room.
	maxSubjectBytes = 128
	// maxTokenBytes bounds the token string before any decoding, so a
	// hostile client cannot make us base64- and JSON-decode megabytes.
	// Generous: a token with long caps lists stays far below it.
	maxTokenBytes = 16 << 10
	// minRSABits rejects RSA keys too weak to trust (NIST: 2048 bits).
	minRSABits = 2048
)

// Identity is who a connection or request acts as.
type Identity struct {
	User      string    // "" for an anonymous session
	Caps      Caps      // rooms the identity may use
	ExpiresAt time.Time // zero if the token has no exp, or in open mode
}

// Caps limits which rooms an identity may enter or subscribe to. A nil list
// allows every room; an empty, non-nil list allows none. Patterns are literal
// except '*', which matches any run of characters (including none):
// "team-*", "*", "doc:*:chat".
type Caps struct {
	Enter     []string `json:"enter,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	// Admin allows writing room metadata (PUT/DELETE /v1/rooms/{room}/meta).
	Admin bool `json:"admin,omitempty"`
}

// CanEnter reports whether the identity may enter room (join it with its own
// presence).
func (c Caps) CanEnter(room string) bool { return matchAny(c.Enter, room) }

// CanSubscribe reports whether the identity may watch room's presence.
func (c Caps) CanSubscribe(room string) bool { return matchAny(c.Subscribe, room) }

func matchAny(patterns []string, room string) bool {
	if patterns == nil {
		return true
	}
	for _, p := range patterns {
		if MatchPattern(p, room) {
			return true
		}
	}
	return false
}

// MatchPattern reports whether s matches pattern, in which '*' matches any
// run of bytes (including none) and every other byte matches only itself.
//
// It runs in time linear in len(pattern)+len(s) (up to the substring search):
// with '*' the only wildcard, taking the leftmost occurrence of each literal
// segment between stars is always correct, so no backtracking is needed.
func MatchPattern(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	// The part before the first star is a prefix of s ...
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	s = s[star:]
	pattern = pattern[star+1:]
	// ... the part after the last star is a suffix of what remains ...
	middle, suffix := "", pattern
	if last := strings.LastIndexByte(pattern, '*'); last >= 0 {
		middle, suffix = pattern[:last], pattern[last+1:]
	}
	if !strings.HasSuffix(s, suffix) {
		return false
	}
	s = s[:len(s)-len(suffix)]
	// ... and the segments in between occur in order, without overlapping.
	for middle != "" {
		seg := middle
		if i := strings.IndexByte(middle, '*'); i >= 0 {
			seg, middle = middle[:i], middle[i+1:]
		} else {
			middle = ""
		}
		if seg == "" {
			continue
		}
		i := strings.Index(s, seg)
		if i < 0 {
			return false
		}
		s = s[i+len(seg):]
	}
	return true
}

// AuthConfig configures a Verifier. The zero value is open dev mode.
type AuthConfig struct {
	// HS256Secret is the shared secret for HS256 tokens; "" disables HS256.
	HS256Secret string
	// PublicKeyFile names a PEM file holding one or more "PUBLIC KEY"
	// (PKIX) or "RSA PUBLIC KEY" (PKCS #1) blocks. RSA keys verify RS256
	// tokens and Ed25519 keys verify EdDSA tokens; a token is accepted if
	// any key of its algorithm verifies it. "" disables both algorithms.
	PublicKeyFile string
	// Leeway is the clock skew allowed when checking exp and nbf. Zero
	// means none; callers typically pass a few seconds.
	Leeway time.Duration
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// Verifier checks bearer tokens. It is immutable after NewVerifier and safe
// for concurrent use.
type Verifier struct {
	secret  []byte
	rsaKeys []jwt.VerificationKey // *rsa.PublicKey
	edKeys  []jwt.VerificationKey // ed25519.PublicKey
	methods []string
	leeway  time.Duration
	now     func() time.Time
}

// NewVerifier returns a Verifier for cfg. It fails if the key file cannot be
// read, holds a block or key of an unsupported kind, or holds no key.
func NewVerifier(cfg AuthConfig) (*Verifier, error) {
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: negative leeway %v", cfg.Leeway)
	}
	v := &Verifier{leeway: cfg.Leeway, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	if cfg.HS256Secret != "" {
		v.secret = []byte(cfg.HS256Secret)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.PublicKeyFile != "" {
		data, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: reading public key file: %w", err)
		}
		if err := v.addPublicKeys(data); err != nil {
			return nil, fmt.Errorf("auth: public key file %s: %w", cfg.PublicKeyFile, err)
		}
		if len(v.rsaKeys) > 0 {
			v.methods = append(v.methods, jwt.SigningMethodRS256.Alg())
		}
		if len(v.edKeys) > 0 {
			v.methods = append(v.methods, jwt.SigningMethodEdDSA.Alg())
		}
	}
	return v, nil
}

// addPublicKeys loads every PEM block of data. Text outside blocks (comments)
// is ignored, as PEM allows.
func (v *Verifier) addPublicKeys(data []byte) error {
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		n++
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		default:
			return fmt.Errorf("block %d: unsupported PEM type %q (want PUBLIC KEY or RSA PUBLIC KEY)", n, block.Type)
		}
		if err != nil {
			return fmt.Errorf("block %d: %w", n, err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if bits := k.N.BitLen(); bits < minRSABits {
				return fmt.Errorf("block %d: RSA key has %d bits, want at least %d", n, bits, minRSABits)
			}
			v.rsaKeys = append(v.rsaKeys, k)
		case ed25519.PublicKey:
			v.edKeys = append(v.edKeys, k)
		default:
			return fmt.Errorf("block %d: unsupported key type %T (want RSA or Ed25519)", n, key)
		}
	}
	if n == 0 {
		return errors.New("no PEM public key found")
	}
	return nil
}

// Open reports open dev mode: no secret and no key configured. Then clients
// name themselves and Verify accepts nothing.
func (v *Verifier) Open() bool { return len(v.methods) == 0 }

// claims is the token payload we read: the registered claims plus our caps.
type claims struct {
	jwt.RegisteredClaims
	Caps json.RawMessage `json:"caps,omitempty"`
}

// Verify checks a JWT and returns the identity it grants. The algorithm must
// be one configured (HS256 with the secret, RS256 with an RSA key, EdDSA with
// an Ed25519 key), the signature valid, exp (if present) in the future and nbf
// (if present) in the past, both within the leeway. The "sub" claim, 1 to 128
// bytes, is required; the optional "caps" claim ({"enter": [...],
// "subscribe": [...]}) must not hold unknown keys. Errors wrap ErrNoToken,
// ErrBadToken or ErrExpired.
func (v *Verifier) Verify(token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	if v.Open() {
		return Identity{}, fmt.Errorf("%w: no verification key configured", ErrBadToken)
	}
	if len(token) > maxTokenBytes {
		return Identity{}, fmt.Errorf("%w: longer than %d bytes", ErrBadToken, maxTokenBytes)
	}
	// A parser per call: jwt.Parser is cheap and not documented as safe for
	// concurrent use.
	p := jwt.NewParser(
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(v.now),
		jwt.WithStrictDecoding(),
	)
	var c claims
	tok, err := p.ParseWithClaims(token, &c, v.keyFor)
	if err != nil {
		return Identity{}, v.classify(tok, err)
	}
	if c.Subject == "" {
		return Identity{}, fmt.Errorf("%w: missing sub claim", ErrBadToken)
	}
	if len(c.Subject) > maxSubjectBytes {
		return Identity{}, fmt.Errorf("%w: sub claim longer than %d bytes", ErrBadToken, maxSubjectBytes)
	}
	id := Identity{User: c.Subject}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.Time
	}
	if id.Caps, err = decodeCaps(c.Caps); err != nil {
		return Identity{}, fmt.Errorf("%w: caps claim: %v", ErrBadToken, err)
	}
	return id, nil
}

// keyFor returns the keys for the token's algorithm. WithValidMethods has
// already refused algorithms we did not configure, so a public key can never
// reach the HMAC verifier (the classic algorithm-confusion attack); the
// key's Go type would also make jwt refuse that pairing.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	switch t.Method {
	case jwt.SigningMethodHS256:
		return v.secret, nil
	case jwt.SigningMethodRS256:
		return jwt.VerificationKeySet{Keys: v.rsaKeys}, nil
	case jwt.SigningMethodEdDSA:
		return jwt.VerificationKeySet{Keys: v.edKeys}, nil
	}
	return nil, fmt.Errorf("algorithm %q not accepted", t.Method.Alg())
}

// classify turns a jwt error into one of ours with a short reason.
func (v *Verifier) classify(tok *jwt.Token, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: exp is in the past", ErrExpired)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return fmt.Errorf("%w: nbf is in the future", ErrBadToken)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fmt.Errorf("%w: malformed", ErrBadToken)
	case tok == nil || tok.Method == nil || errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("%w: unsupported algorithm", ErrBadToken)
	case !slices.Contains(v.methods, tok.Method.Alg()):
		return fmt.Errorf("%w: algorithm %q not accepted", ErrBadToken, tok.Method.Alg())
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fmt.Errorf("%w: bad signature", ErrBadToken)
	}
	return fmt.Errorf("%w: claims invalid", ErrBadToken)
}

// decodeCaps decodes the caps claim strictly: an unknown key such as a
// misspelt "subscibe" would otherwise leave that list nil, which allows
// every room.
func decodeCaps(raw json.RawMessage) (Caps, error) {
	var caps Caps
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return caps, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&caps); err != nil {
		return Caps{}, err
	}
	return caps, nil
}

// TokenFromRequest finds a token in "Authorization: Bearer X", then the query
// parameter "token" (browsers cannot set headers on a WebSocket), then the
// cookie "presence_token". It returns "" if there is none.
func TokenFromRequest(r *http.Request) string {
	if tok := bearerToken(r); tok != "" {
		return tok
	}
	if r.URL != nil {
		if tok := r.URL.Query().Get("token"); tok != "" {
			return tok
		}
	}
	if c, err := r.Cookie("presence_token"); err == nil && c.Value != "" {
		return c.Value
	}
	return ""
}

// bearerToken returns X of an "Authorization: Bearer X" header, or "". The
// scheme is case-insensitive (RFC 9110 §11.1): "bearer X" is the same token.
func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return ""
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}
