package topology

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/minipipe/minipipe/internal/auth"
)

// userCommand edits a users file: `minipipe user add NAME --roles … --auth-file F` (the password from
// standard input, or asked twice on a terminal), `minipipe user remove NAME --auth-file F`,
// `minipipe user list --auth-file F`. A running minipipe reads the file again within a second.
func userCommand(stdout, stderr io.Writer) *cobra.Command {
	var file string
	var roles []string
	user := &cobra.Command{Use: "user", Short: "Add, remove or list the users of the HTTP APIs in a users file (--auth-file)"}
	user.PersistentFlags().StringVar(&file, "auth-file", os.Getenv(EnvName("auth-file")), "the users file (created when missing, mode 0600)")
	add := &cobra.Command{
		Use:   "add NAME --roles reader,producer,registry-writer,admin",
		Short: "Add a user, or set an existing user's password and roles; the password is read from standard input",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !auth.ValidName(name) {
				return fmt.Errorf("user name %q: use 1–128 of A–Z a–z 0–9 . _ @ + -", name)
			}
			if len(roles) == 0 {
				return errors.New("--roles: give at least one of reader, producer, registry-writer, admin")
			}
			u := auth.User{Name: name}
			for _, r := range roles {
				role, err := auth.ParseRole(strings.TrimSpace(r))
				if err != nil {
					return fmt.Errorf("--roles: %w", err)
				}
				u.Roles = append(u.Roles, role)
			}
			password, err := readPassword(cmd.InOrStdin(), stderr, name)
			if err != nil {
				return err
			}
			if u.Hash, err = auth.HashPassword(password); err != nil {
				return err
			}
			return editUsers(file, func(users []auth.User) ([]auth.User, error) {
				for i := range users {
					if users[i].Name == name {
						users[i] = u
						fmt.Fprintf(stdout, "user %s updated in %s\n", name, file)
						return users, nil
					}
				}
				fmt.Fprintf(stdout, "user %s added to %s\n", name, file)
				return append(users, u), nil
			})
		},
	}
	add.Flags().StringSliceVar(&roles, "roles", nil, "roles of the user: reader, producer, registry-writer, admin (comma-separated)")
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return editUsers(file, func(users []auth.User) ([]auth.User, error) {
				for i := range users {
					if users[i].Name == args[0] {
						fmt.Fprintf(stdout, "user %s removed from %s\n", args[0], file)
						return append(users[:i], users[i+1:]...), nil
					}
				}
				return nil, fmt.Errorf("no user %s in %s", args[0], file)
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users and their roles (never their hashes)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--auth-file: which users file?")
			}
			b, err := os.ReadFile(filepath.Clean(file))
			if err != nil {
				return err
			}
			users, err := auth.ParseFile(b)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			for _, u := range users {
				rs := make([]string, len(u.Roles))
				for i, r := range u.Roles {
					rs[i] = string(r)
				}
				fmt.Fprintf(stdout, "%s\t%s\n", u.Name, strings.Join(rs, ","))
			}
			return nil
		},
	}
	user.AddCommand(add, remove, list)
	return user
}

// readPassword reads a password: asked twice without echo on a terminal, else the first line of in.
func readPassword(in io.Reader, prompt io.Writer, name string) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(prompt, "Password for %s: ", name)
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(prompt, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, err
		}
		if string(p1) != string(p2) {
			return nil, errors.New("the passwords differ")
		}
		if len(p1) == 0 {
			return nil, errors.New("the password is empty")
		}
		return p1, nil
	}
	line, err := bufio.NewReaderSize(in, 4096).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return nil, errors.New("no password on standard input (give it as its first line)")
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("the password on standard input is empty")
	}
	return []byte(line), nil
}

// editUsers changes a users file under an exclusive lock and replaces it atomically (temp file, fsync,
// rename, fsync of the directory), keeping its owner, group and mode (0600 for a new file). A missing file
// starts empty.
func editUsers(file string, edit func([]auth.User) ([]auth.User, error)) error {
	if file == "" {
		return errors.New("--auth-file: which users file?")
	}
	file = filepath.Clean(file)
	lock, err := os.OpenFile(file+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("users file lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("users file lock: %w", err)
	}
	var users []auth.User
	mode, uid, gid := os.FileMode(0o600), -1, -1
	b, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if users, err = auth.ParseFile(b); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		// The new file keeps the old one's owner, group and mode: minipipe, perhaps running as another
		// account than this command, must still read it.
		if st, err := os.Stat(file); err == nil {
			mode = st.Mode().Perm()
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				uid, gid = int(sys.Uid), int(sys.Gid)
			}
		}
	}
	if users, err = edit(users); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 && (uid != os.Geteuid() || gid != os.Getegid()) {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return fmt.Errorf("%s belongs to uid %d, gid %d, and a copy could not be given to them (run this as that user or as root; the file is unchanged): %w", file, uid, gid, err)
		}
	}
	if _, err := tmp.Write(auth.FormatFile(users)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(file))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
