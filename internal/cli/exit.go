package cli

import (
	"errors"
	"fmt"
)

// Exit codes shared by every command (see DESIGN.md).
const (
	exitOK       = 0
	exitFindings = 1 // findings, failed tests, runtime failure
	exitUsage    = 2 // usage or input error
)

// exitError carries the process exit code for an error up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage or input error: exit code 2.
func usageErr(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: exitUsage, err: err}
}

// usageErrf is usageErr with fmt.Errorf formatting.
func usageErrf(format string, args ...any) error {
	return usageErr(fmt.Errorf(format, args...))
}

// errFailed reports that a command ran fine but found problems (failed tests,
// findings over the threshold, widening diffs). It prints nothing: the command
// already said what failed.
var errFailed = &exitError{code: exitFindings, err: errors.New("")}

// ExitCode maps an error returned by Execute to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFindings
}
