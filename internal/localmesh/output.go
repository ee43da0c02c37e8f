package localmesh

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// ANSI colors cycled over components when the output is a terminal.
var palette = []string{"\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[96m", "\x1b[93m", "\x1b[92m"}

const reset = "\x1b[0m"

// Output serializes prefixed lines from many components onto one writer,
// like `docker compose up`.
type Output struct {
	mu     sync.Mutex
	w      io.Writer
	color  bool
	width  int
	nextID int
}

// NewOutput writes to w; color only when w is a terminal.
func NewOutput(w io.Writer, color bool) *Output { return &Output{w: w, color: color, width: 8} }

// Reserve widens the prefix column so names up to n characters align.
func (o *Output) Reserve(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.width = max(o.width, n)
}

// Writer returns an io.Writer that prefixes every line with name.
func (o *Output) Writer(name string) io.Writer {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := palette[o.nextID%len(palette)]
	o.nextID++
	return &lineWriter{out: o, name: name, color: c}
}

// Printf writes a line with no prefix (banners).
func (o *Output) Printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format, args...)
}

type lineWriter struct {
	out   *Output
	name  string
	color string
	buf   []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	// A component that prints a huge line without newline must not grow
	// the buffer forever.
	if len(l.buf) > 64<<10 {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *lineWriter) emit(line []byte) {
	o := l.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.color {
		fmt.Fprintf(o.w, "%s%-*s |%s %s\n", l.color, o.width, l.name, reset, line)
	} else {
		fmt.Fprintf(o.w, "%-*s | %s\n", o.width, l.name, line)
	}
}
