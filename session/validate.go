package session

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// validID accepts 1..MaxIDBytes bytes of UTF-8 without control characters.
func (e *Engine) validID(id string) error {
	if id == "" || len(id) > e.cfg.MaxIDBytes {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidID, len(id), e.cfg.MaxIDBytes)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidID)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: control character", ErrInvalidID)
		}
	}
	return nil
}

// validData accepts empty data or valid JSON of at most MaxDataBytes.
func (e *Engine) validData(data json.RawMessage) error {
	if len(data) == 0 {
		return nil
	}
	if len(data) > e.cfg.MaxDataBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrDataTooLarge, len(data), e.cfg.MaxDataBytes)
	}
	if !json.Valid(data) {
		return ErrInvalidData
	}
	return nil
}

func normalizeDevice(d Device) Device {
	d.Kind = strings.ToLower(strings.TrimSpace(d.Kind))
	if len(d.Kind) > 32 {
		d.Kind = d.Kind[:32]
	}
	if len(d.Platform) > 64 {
		d.Platform = d.Platform[:64]
	}
	return d
}
