package mailcopy

import "io"

// WithBodyWrapper returns c with wrap around every body reader that the
// engine hands to the appender (fault injection in the body stream).
func WithBodyWrapper(c Config, wrap func(uid uint32, body io.Reader) io.Reader) Config {
	c.wrapBody = wrap
	return c
}
