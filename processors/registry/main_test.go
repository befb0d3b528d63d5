package registry_test

import (
	"testing"

	"github.com/minipipe/minipipe/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }
