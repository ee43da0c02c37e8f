package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"meshward.dev/meshward/internal/control"
)

// defaultDataDir is where `meshward control` and `meshward up` keep the CA,
// the store and the admin credential unless told otherwise.
const defaultDataDir = ".meshward"

// adminOptions locate the control plane and the admin credential for
// commands that call admin APIs.
type adminOptions struct {
	dataDir string
	control string
}

func (o *adminOptions) addFlags(cmd *cobra.Command) {
	def := os.Getenv("MESHWARD_DATA_DIR")
	if def == "" {
		def = defaultDataDir
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", def, "data dir of the control plane (holds the admin credential in admin/); env MESHWARD_DATA_DIR")
	cmd.Flags().StringVar(&o.control, "control", os.Getenv("MESHWARD_CONTROL"), "control plane address HOST:PORT (default: the one recorded in the data dir); env MESHWARD_CONTROL")
}

func (o *adminOptions) dial() (*control.AdminClient, error) {
	return control.DialAdmin(o.dataDir, o.control)
}

// adminCall dials the control plane as admin, makes one call, and turns a
// gRPC error into a CLI error (see rpcErr).
func adminCall[T any](ctx context.Context, o *adminOptions, call func(context.Context, *control.AdminClient) (T, error)) (T, error) {
	var zero T
	c, err := o.dial()
	if err != nil {
		return zero, err
	}
	defer c.Close()
	v, err := call(ctx, c)
	if err != nil {
		return zero, o.rpcErr(err)
	}
	return v, nil
}

// rpcErr turns a gRPC error from the control plane into a CLI error: bad
// input exits 2, an unreachable control plane says what to check.
func (o *adminOptions) rpcErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		return usageErr(errors.New(st.Message()))
	case codes.Unavailable:
		return fmt.Errorf("control plane unreachable (is `meshward control` or `meshward up` running with --data-dir %s?): %s", o.dataDir, st.Message())
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("refused by the control plane: %s", st.Message())
	}
	return errors.New(st.Message())
}
