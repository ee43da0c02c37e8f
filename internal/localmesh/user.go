package localmesh

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"meshward.dev/meshward/internal/config"
)

// appUser is the user a service's app runs as (service's user:).
type appUser struct {
	name string
	home string
	cred *syscall.Credential
}

// resolveUsers looks up every service's user:. A user: needs root (only
// root can start a process as another user); without root, or for a user
// this machine does not have, it is an error in the mesh file: running
// the app as the mesh's own user instead would quietly give it the data
// dir the user: was meant to keep from it. nil entries run as the
// supervisor's user.
func resolveUsers(mesh *config.Mesh, euid int) ([]*appUser, error) {
	users := make([]*appUser, len(mesh.Services))
	var errs config.ErrorList
	fail := func(i int, format string, args ...any) {
		field := fmt.Sprintf("spec.services[%d].user", i)
		errs = append(errs, &config.Error{File: mesh.File, Line: mesh.LineOf(field), Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for i, s := range mesh.Services {
		if s.User == "" {
			continue
		}
		if euid != 0 {
			fail(i, "running %s as %q needs meshward up to run as root (it runs as uid %d); remove user: to run every app as uid %d", s.Name, s.User, euid, euid)
			continue
		}
		u, err := lookupUser(s.User)
		if err != nil {
			fail(i, "no user %q on this machine", s.User)
			continue
		}
		cred, err := credential(u)
		if err != nil {
			fail(i, "user %q: %v", s.User, err)
			continue
		}
		users[i] = &appUser{name: u.Username, home: u.HomeDir, cred: cred}
	}
	return users, errs.Err()
}

func lookupUser(s string) (*user.User, error) {
	if _, err := strconv.ParseUint(s, 10, 32); err == nil {
		return user.LookupId(s)
	}
	return user.Lookup(s)
}

// credential is the uid, primary gid and supplementary groups of u (the
// supervisor's own groups, root's, are never passed on).
func credential(u *user.User) (*syscall.Credential, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid %q: %w", u.Gid, err)
	}
	c := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil && g != gid {
				c.Groups = append(c.Groups, uint32(g))
			}
		}
	}
	return c, nil
}

// lockDataDir takes every permission for group and others off the data
// dir and everything in it (the store, the CA, the admin credential), so
// apps running as their own users can neither read nor list it.
func lockDataDir(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return walkLock(root, ".")
}

func walkLock(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := root.Chmod(name, perm&^0o077); err != nil {
			return err
		}
	}
	if !fi.IsDir() {
		return nil
	}
	d, err := root.Open(name)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := walkLock(root, name+"/"+n); err != nil {
			return err
		}
	}
	return nil
}

// CheckUsers reports, as errors in the mesh file, every user: that this
// process cannot honour (not root, or no such user); `up` calls it before
// it starts anything. New checks the same.
func CheckUsers(mesh *config.Mesh) error {
	_, err := resolveUsers(mesh, geteuid())
	return err
}
