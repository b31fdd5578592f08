//go:build !linux

package gateway

import (
	"errors"
	"time"
)

// poller is Linux only (epoll). Elsewhere every connection keeps a reading
// goroutine.
type poller struct{}

func newPoller(func(*conn)) (*poller, error) { return nil, errors.New("no epoll on this system") }

func (p *poller) watch(*conn) error { return errors.New("no poller") }
func (p *poller) arm(*conn) error   { return errors.New("no poller") }
func (p *poller) forget(*conn)      {}
func (p *poller) close()            {}
func (p *poller) watched() int      { return 0 }

func (c *conn) linger(time.Duration) bool { return false }
