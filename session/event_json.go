package session

import "strconv"

// encodeEvent is json.Marshal(ev) without reflection, for the events a
// node emits by the thousand (19,500 sessions going stale at once when
// their node dies: two events each, whose encoding was most of the time
// the engine's lock was held). It writes only what it can write exactly as
// encoding/json would: strings and raw JSON made of plain printable ASCII
// with nothing to escape. Anything else goes to encoding/json.
func encodeEvent(ev *Event) []byte {
	if b, ok := appendEvent(make([]byte, 0, 384), ev); ok {
		return b
	}
	return mustJSON(ev)
}

// appendEvent appends ev's JSON to b; ok is false when something in it is
// not plain (b is then unusable).
func appendEvent(b []byte, ev *Event) (_ []byte, ok bool) {
	e := encoder{b: b, ok: true}
	e.str(`{"type":`, string(ev.Type))
	e.str(`,"room":`, ev.Room)
	e.b = append(e.b, `,"version":`...)
	e.b = strconv.AppendUint(e.b, ev.Version, 10)
	e.b = append(e.b, `,"time":`...)
	e.b = strconv.AppendInt(e.b, ev.Time, 10)
	e.opt(`,"session":`, ev.Session)
	e.opt(`,"user":`, ev.User)
	if m := ev.Member; m != nil {
		e.str(`,"member":{"session":`, m.Session)
		e.opt(`,"user":`, m.User)
		e.b = append(e.b, `,"device":{`...)
		sep := ""
		if m.Device.Kind != "" {
			e.str(`"kind":`, m.Device.Kind)
			sep = ","
		}
		if m.Device.Platform != "" {
			e.str(sep+`"platform":`, m.Device.Platform)
			sep = ","
		}
		e.raw(sep+`"meta":`, m.Device.Meta)
		e.str(`},"state":`, string(m.State))
		if m.Here {
			e.b = append(e.b, `,"here":true`...)
		} else {
			e.b = append(e.b, `,"here":false`...)
		}
		e.opt(`,"location":`, m.Location)
		e.raw(`,"data":`, m.Data)
		e.b = append(e.b, `,"entered_at":`...)
		e.b = strconv.AppendInt(e.b, m.EnteredAt, 10)
		e.b = append(e.b, `,"last_active":`...)
		e.b = strconv.AppendInt(e.b, m.LastActive, 10)
		e.b = append(e.b, '}')
	}
	e.opt(`,"reason":`, string(ev.Reason))
	e.raw(`,"data":`, ev.Data)
	e.opt(`,"state":`, string(ev.State))
	if ev.Typing {
		e.b = append(e.b, `,"typing":true`...)
	}
	e.b = append(e.b, '}')
	return e.b, e.ok
}

type encoder struct {
	b  []byte
	ok bool
}

// str appends key and s quoted, if s is plain.
func (e *encoder) str(key, s string) {
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			e.ok = false
			return
		}
	}
	e.b = append(e.b, key...)
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

// opt is str with omitempty.
func (e *encoder) opt(key, s string) {
	if s != "" {
		e.str(key, s)
	}
}

// raw appends key and raw JSON (omitted when empty) as encoding/json would
// (compacted, HTML escaped) when it is already so: printable ASCII with no
// whitespace and no <, > or &. (Raw values here are valid JSON: checked when
// they came in, or decoded from the replica.)
func (e *encoder) raw(key string, raw []byte) {
	if len(raw) == 0 {
		return
	}
	for _, c := range raw {
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			e.ok = false
			return
		}
	}
	e.b = append(e.b, key...)
	e.b = append(e.b, raw...)
}

// plain reports whether c needs no escaping in a JSON string as
// encoding/json writes it (which also escapes <, > and & for HTML).
func plain(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}
