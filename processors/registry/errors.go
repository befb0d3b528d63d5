package registry

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a registry failure as Confluent's Schema Registry reports it: an HTTP status and an error_code
// (the status itself or a five-digit refinement), with the message clients show.
type Error struct {
	Status  int    `json:"-"`
	Code    int    `json:"error_code"`
	Message string `json:"message"`
	// Retriable marks failures worth retrying as they are (store unavailable, timeouts).
	Retriable bool `json:"-"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

// AsError extracts a registry error; anything else becomes a 500/50001 store error.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errStore(err)
}

// Confluent's error codes (schema-registry rest/exceptions/Errors.java), with its messages.
func errSubjectNotFound(s string) *Error {
	return &Error{Status: 404, Code: 40401, Message: fmt.Sprintf("Subject '%s' not found.", s)}
}
func errVersionNotFound(v string) *Error {
	return &Error{Status: 404, Code: 40402, Message: fmt.Sprintf("Version %s not found.", v)}
}
func errSchemaNotFound(what string) *Error {
	return &Error{Status: 404, Code: 40403, Message: fmt.Sprintf("Schema %s not found", what)}
}
func errSubjectSoftDeleted(s string) *Error {
	return &Error{Status: 404, Code: 40404, Message: fmt.Sprintf("Subject '%s' was soft deleted.Set permanent=true to delete permanently", s)}
}
func errSubjectNotSoftDeleted(s string) *Error {
	return &Error{Status: 404, Code: 40405, Message: fmt.Sprintf("Subject '%s' was not deleted first before being permanently deleted", s)}
}
func errVersionSoftDeleted(s string, v int) *Error {
	return &Error{Status: 404, Code: 40406, Message: fmt.Sprintf("Subject '%s' Version %d was soft deleted.Set permanent=true to delete permanently", s, v)}
}
func errVersionNotSoftDeleted(s string, v int) *Error {
	return &Error{Status: 404, Code: 40407, Message: fmt.Sprintf("Subject '%s' Version %d was not deleted first before being permanently deleted", s, v)}
}
func errSubjectLevelConfigNotConfigured(s string) *Error {
	return &Error{Status: 404, Code: 40408, Message: fmt.Sprintf("Subject '%s' does not have subject-level compatibility configured", s)}
}
func errSubjectLevelModeNotConfigured(s string) *Error {
	return &Error{Status: 404, Code: 40409, Message: fmt.Sprintf("Subject '%s' does not have subject-level mode configured", s)}
}
func errIncompatible(subject string, details []string) *Error {
	msg := fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject \"%s\"", subject)
	if len(details) > 0 {
		msg += ", details: ["
		for i, d := range details {
			if i > 0 {
				msg += ", "
			}
			msg += d
		}
		msg += "]"
	}
	return &Error{Status: http.StatusConflict, Code: 409, Message: msg}
}
func errInvalidSchema(detail string) *Error {
	return &Error{Status: 422, Code: 42201, Message: "Invalid schema " + detail}
}
func errInvalidVersion(v string) *Error {
	return &Error{Status: 422, Code: 42202, Message: fmt.Sprintf("The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", v)}
}
func errInvalidCompatibility(level string) *Error {
	return &Error{Status: 422, Code: 42203, Message: "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"}
}
func errInvalidMode(mode string) *Error {
	return &Error{Status: 422, Code: 42204, Message: fmt.Sprintf("Invalid mode %q. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT", mode)}
}
func errOperationNotPermitted(msg string) *Error {
	return &Error{Status: 422, Code: 42205, Message: msg}
}
func errReferenceExists(msg string) *Error {
	return &Error{Status: 422, Code: 42206, Message: msg}
}
func errIDMismatch(msg string) *Error {
	return &Error{Status: 422, Code: 42207, Message: msg}
}
func errInvalidSubject(s string) *Error {
	return &Error{Status: 422, Code: 42208, Message: fmt.Sprintf("The specified subject '%s' is not a valid.", s)}
}
func errSchemaTooLarge(n, max int) *Error {
	return &Error{Status: 422, Code: 42209, Message: fmt.Sprintf("Schema of %d bytes is too large (the limit is %d)", n, max)}
}
func errStore(err error) *Error {
	return &Error{Status: 500, Code: 50001, Message: "Error in the backend data store - " + err.Error(), Retriable: true}
}
func errTimeout(what string) *Error {
	return &Error{Status: 500, Code: 50002, Message: "Operation timed out - " + what, Retriable: true}
}
func errUnprocessable(msg string) *Error {
	return &Error{Status: 422, Code: 422, Message: msg}
}
func errBadRequest(msg string) *Error {
	return &Error{Status: 400, Code: 400, Message: msg}
}
