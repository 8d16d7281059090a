"""Error codes returned by k2sim, and the exception that carries them.

The codes are stable: tests and the collection may match on them.  Every
error body is {"error_code": CODE, "error_msg": TEXT}, with strings only
(no JSON booleans or nulls, which some clients cannot parse).  For the
retryable busy family the message is the bare code, as real arrays send it.
"""

# code -> (HTTP status, short description used in the README)
CODES = {
    "MC_ERR_INVALID_ARG": (400, "a value in the body is missing, of the wrong type or out of range"),
    "MC_ERR_INVALID_QUERY": (400, "a query parameter names an unknown field or has a bad value"),
    "MC_ERR_ALREADY_EXISTS": (400, "the name (or IQN, PWWN, volume+host pair) is already taken"),
    "MC_ERR_REF_NOT_FOUND": (400, "a reference in the body points to an object that does not exist"),
    "MC_ERR_IN_USE": (400, "the object is still used (mapped volume, VG with volumes, host with mappings, ...)"),
    "MC_ERR_FORBIDDEN_CHANGE": (400, "the field cannot change (VG is_dedup, shrinking a volume, system objects, ...)"),
    "MC_ERR_LUN_IN_USE": (400, "the requested LUN is taken on that host or host group, or no LUN is free"),
    "MC_ERR_QUOTA_EXCEEDED": (400, "the volume group quota would be exceeded"),
    "MC_ERR_INVALID_STATE": (400, "the replication session's role and state do not allow this (transition, delete, mapping a target volume)"),
    "MC_ERR_PEER_UNREACHABLE": (400, "the peer array named by mgmt_host is not served by this process, or is down"),
    "MC_ERR_PEER_AUTH": (400, "the peer array refused the credentials stored in the peer array object"),
    "MC_ERR_PEER_NOT_PAIRED": (400, "the peer array has no replication/peer_k2arrays entry pointing back at this array"),
    "MC_ERR_BUSY": (400, "retryable: the array is busy (fault injection)"),
    "MC_ERR_AUTH": (401, "missing or wrong credentials"),
    "MC_ERR_PERMISSION_DENIED": (403, "the user's role does not allow this (read_only users may only GET)"),
    "MC_ERR_NOT_FOUND": (404, "no object with that id, or no such resource"),
    "MC_ERR_METHOD_NOT_ALLOWED": (405, "the resource does not support this method"),
    "MC_ERR_TOO_MANY_REQUESTS": (429, "request rate exceeded (fault injection)"),
    "MC_ERR_SEQUENCE": (409, "X-K2-Sequence numbers are not all greater than the last accepted ones"),
    "MC_ERR_INTERNAL": (500, "internal server error (fault injection)"),
}


class ApiError(Exception):
    """An error answered to the client as JSON."""

    def __init__(self, code, msg=None, status=None):
        super().__init__(msg or code)
        self.code = code
        self.msg = msg or code
        self.status = status or CODES[code][0]

    def body(self):
        return {"error_code": self.code, "error_msg": self.msg}
