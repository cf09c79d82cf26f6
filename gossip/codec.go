package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// The wire format is a compact binary one: unsigned varints, length-prefixed
// strings and byte strings, fixed-size keys and signatures. Every length is
// checked against what remains before anything is allocated, and a record
// with bytes left over is refused, so a truncated or padded message never
// decodes.

// errTruncated says a message ended inside a field.
var errTruncated = errors.New("truncated message")

// enc appends fields to a buffer.
type enc struct{ b []byte }

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) string(v string)  { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) fixed(v []byte)   { e.b = append(e.b, v...) }
func (e *enc) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// flags packs up to 8 booleans into one byte, the first in the lowest bit.
func (e *enc) flags(bs ...bool) {
	var f byte
	for i, b := range bs {
		if b {
			f |= 1 << i
		}
	}
	e.byte(f)
}

// addr is 0 (none), 4 or 16 bytes, length first.
func (e *enc) addr(a netip.Addr) {
	if !a.IsValid() {
		e.byte(0)
		return
	}
	raw := a.AsSlice()
	e.byte(byte(len(raw)))
	e.fixed(raw)
}

func (e *enc) prefix(p netip.Prefix) {
	e.addr(p.Addr())
	if p.IsValid() {
		e.byte(byte(p.Bits()))
	}
}

// dec reads fields; the first error sticks and later reads return zeros.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// flags reads n booleans packed by enc.flags; an unknown bit is an error.
func (d *dec) flags(n int) []bool {
	f := d.byte()
	if f>>n != 0 {
		d.fail(fmt.Errorf("unknown flags %#x", f))
	}
	out := make([]bool, n)
	for i := range out {
		out[i] = f&(1<<i) != 0
	}
	return out
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail(errTruncated)
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *dec) byte() byte {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed byte string of at most max bytes.
func (d *dec) bytes(max int) []byte {
	n := d.uvarint()
	if d.err == nil && n > uint64(max) {
		d.fail(fmt.Errorf("field of %d bytes exceeds its limit of %d", n, max))
		return nil
	}
	return d.take(int(n))
}

func (d *dec) string(max int) string { return string(d.bytes(max)) }

func (d *dec) fixed(dst []byte) { copy(dst, d.take(len(dst))) }

func (d *dec) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(errors.New("bad boolean"))
	return false
}

func (d *dec) addr() netip.Addr {
	switch n := d.byte(); n {
	case 0:
		return netip.Addr{}
	case 4, 16:
		a, _ := netip.AddrFromSlice(d.take(int(n)))
		return a
	default:
		d.fail(fmt.Errorf("bad address length %d", n))
		return netip.Addr{}
	}
}

func (d *dec) prefix() netip.Prefix {
	a := d.addr()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	p, err := a.Prefix(int(d.byte()))
	if err != nil || p.Addr() != a {
		d.fail(fmt.Errorf("bad prefix %s", a))
		return netip.Prefix{}
	}
	return p
}

func (d *dec) port() uint16 {
	p := d.uvarint()
	if p > 65535 {
		d.fail(fmt.Errorf("port %d", p))
	}
	return uint16(p)
}

// end reports the first error, or that bytes are left over.
func (d *dec) end() error {
	if d.err == nil && len(d.b) > 0 {
		return fmt.Errorf("%d unexpected bytes after the record", len(d.b))
	}
	return d.err
}
