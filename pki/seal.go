package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Secrets such as the CA key travel to masters only, sealed to the receiving
// node's X25519 key: an ephemeral key agreement, HKDF-SHA256 and AES-256-GCM.
// Even a holder of the join token who reads gossip cannot open them.

// NewNodeKey makes a node's long-lived X25519 key.
func NewNodeKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

// ParseNodeKey loads a node key from its raw 32 bytes.
func ParseNodeKey(raw []byte) (*ecdh.PrivateKey, error) {
	return ecdh.X25519().NewPrivateKey(raw)
}

// Seal encrypts plaintext so that only the holder of the private key of
// recipient can read it; aad is authenticated (e.g. the recipient's name).
func Seal(recipient []byte, plaintext, aad []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(recipient)
	if err != nil {
		return nil, fmt.Errorf("recipient key: %w", err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return nil, err
	}
	aead, err := sealAEAD(shared, eph.PublicKey().Bytes(), recipient)
	if err != nil {
		return nil, err
	}
	out := append([]byte{}, eph.PublicKey().Bytes()...)
	return aead.Seal(out, make([]byte, aead.NonceSize()), plaintext, aad), nil
}

// Open reverses Seal with the recipient's private key.
func Open(key *ecdh.PrivateKey, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 32 {
		return nil, errors.New("sealed message too short")
	}
	eph, err := ecdh.X25519().NewPublicKey(sealed[:32])
	if err != nil {
		return nil, err
	}
	shared, err := key.ECDH(eph)
	if err != nil {
		return nil, err
	}
	aead, err := sealAEAD(shared, sealed[:32], key.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, make([]byte, aead.NonceSize()), sealed[32:], aad)
	if err != nil {
		return nil, fmt.Errorf("open sealed secret: %w", err)
	}
	return pt, nil
}

// sealAEAD derives a one-time key; the ephemeral key makes the zero nonce safe.
func sealAEAD(shared, ephPub, recipient []byte) (cipher.AEAD, error) {
	salt := append(append([]byte{}, ephPub...), recipient...)
	k, err := hkdf.Key(sha256.New, shared, salt, "knode seal v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
