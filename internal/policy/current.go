package policy

import "sync/atomic"

// Current is the Engine in force, swapped atomically. Readers never lock;
// the zero value holds no engine and so denies everything.
type Current struct {
	p atomic.Pointer[Engine]
}

// Load returns the engine in force (nil before the first Store).
func (c *Current) Load() *Engine { return c.p.Load() }

// Store puts e in force.
func (c *Current) Store(e *Engine) { c.p.Store(e) }

// Decide decides with the engine in force.
func (c *Current) Decide(r *Request) Decision { return c.p.Load().Decide(r) }

// Update compiles files and, only if the whole set compiles, puts it in
// force and returns it. On error the engine in force is unchanged: a bad
// policy push never weakens or drops the running policy.
func (c *Current) Update(files []File, opts Options) (*Engine, error) {
	e, err := Compile(files, opts)
	if err != nil {
		return nil, err
	}
	c.p.Store(e)
	return e, nil
}
