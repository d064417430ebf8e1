// Fences: connections the proxy abandoned while a server may still hold commands they sent.
//
// A stopped or slow redis-server keeps what a connection sent in its socket buffer and runs
// it whenever it wakes, even after the proxy closed that connection (the close arrives
// after the data). A resync, a replay, a repair or a key move made in the meantime would
// then be overtaken by older writes. So every connection that is given up with commands
// outstanding is recorded here by the server's address and its own local address, and the
// next connection that writes to that server first runs `CLIENT KILL ADDR <local>`: redis
// frees that client and drops whatever it had not run yet. A server with a fence pending
// serves nothing until the kill has run (BackendServer gates on pending()).
//
// Owned by Servers; keyed by address, so a server removed by a reload and added again
// finds the fences its earlier incarnation left.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ringproxy::proxy {

class FenceBook {
 public:
  // `local` as redis prints a client's addr: "127.0.0.1:51234", "[::1]:51234".
  void add(const std::string& server, std::string local);
  const std::vector<std::string>& pending(const std::string& server) const;
  bool any(const std::string& server) const { return pending_.count(server) != 0; }
  // A kill for `local` has run on `server` (it freed the client, or the client was gone).
  // False when it was not pending (another connection's kill ran first).
  bool done(const std::string& server, std::string_view local);

  // The RESP command that fences `local`.
  static std::string kill_command(std::string_view local);

 private:
  std::map<std::string, std::vector<std::string>> pending_;
};

}  // namespace ringproxy::proxy
