package pki

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A join token carries everything a new node needs to join securely:
//
//	knode1.<64 hex: SHA-256 of the CA's public key>.<32 hex: 128-bit secret>
//
// The secret proves to a member that the joiner may join (members hold only
// a verifier derived from it, in a token record that expires); the pin lets
// the joiner verify the CA it is sent, as kubeadm's
// discovery-token-ca-cert-hash does.
type Token struct {
	CAPin  [32]byte
	Secret [16]byte
}

const tokenPrefix = "knode1"

// NewToken makes a token for the CA with a fresh random secret.
func NewToken(ca *CA) (Token, error) {
	var t Token
	pin, _ := hex.DecodeString(strings.TrimPrefix(PinHash(ca.Cert), "sha256:"))
	copy(t.CAPin[:], pin)
	if _, err := rand.Read(t.Secret[:]); err != nil {
		return Token{}, fmt.Errorf("random token secret: %w", err)
	}
	return t, nil
}

// String is the token as users copy it.
func (t Token) String() string {
	return tokenPrefix + "." + hex.EncodeToString(t.CAPin[:]) + "." + hex.EncodeToString(t.Secret[:])
}

// ErrMalformedToken says a token is not of knode's form.
var ErrMalformedToken = errors.New("malformed token")

// ParseToken parses the String form, tolerating surrounding blanks.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix || len(parts[1]) != 64 || len(parts[2]) != 32 {
		return Token{}, fmt.Errorf("%w: want %s.<64 hex>.<32 hex> as printed by `knode init` or `knode token`", ErrMalformedToken, tokenPrefix)
	}
	var t Token
	if _, err := hex.Decode(t.CAPin[:], []byte(parts[1])); err != nil {
		return Token{}, fmt.Errorf("%w: CA pin is not hex", ErrMalformedToken)
	}
	if _, err := hex.Decode(t.Secret[:], []byte(parts[2])); err != nil {
		return Token{}, fmt.Errorf("%w: secret is not hex", ErrMalformedToken)
	}
	return t, nil
}

// TokenIDSize is the length of a token's public identifier.
const TokenIDSize = 8

// ID is the token's public name (`knode token list`, `knode token delete`):
// derived from the secret, so it names the token without revealing it.
func (t Token) ID() [TokenIDSize]byte {
	var id [TokenIDSize]byte
	copy(id[:], t.derive("knode token id v1", TokenIDSize))
	return id
}

// Verifier is what members keep to check that a joiner holds the token: a
// key derived from the secret (the secret itself never leaves the node that
// created it, and a verifier does not give back the secret).
func (t Token) Verifier() [32]byte {
	var v [32]byte
	copy(v[:], t.derive("knode token verifier v1", 32))
	return v
}

func (t Token) derive(label string, n int) []byte {
	k, err := hkdf.Key(sha256.New, t.Secret[:], nil, label, n)
	if err != nil {
		panic(err) // only for lengths over 255*32, impossible here
	}
	return k
}

// NewGossipKey is a fresh 32-byte AES-256 key for memberlist's encryption.
// It is the cluster's own, handed to each joiner sealed after its token and
// pin were checked: the token only opens the door once.
func NewGossipKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("random gossip key: %w", err)
	}
	return k, nil
}

// VerifyCA checks that certPEM is the CA this token pins.
func (t Token) VerifyCA(certPEM []byte) error {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return fmt.Errorf("CA certificate sent by the cluster: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	if subtle.ConstantTimeCompare(sum[:], t.CAPin[:]) != 1 {
		return fmt.Errorf("the cluster's CA (%s) does not match the token's pin sha256:%x: wrong cluster, or someone in between",
			PinHash(cert), t.CAPin)
	}
	return nil
}
