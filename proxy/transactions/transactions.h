// Transactions through the proxy (the rules: routing/transaction.h).
//
// A client that sends MULTI or WATCH is handed to the Transactions: its requests come here
// (ClientSession's handler) until the transaction is over, then go back to the data path.
//
//   MULTI      +OK; the commands after it are checked and queued here, answered +QUEUED
//   EXEC       MULTI, the commands and EXEC go to their shard as one request (DataPath::
//              run_transaction): on the shard's shared connection, in order with the client's
//              other requests, replicated like one write; the client gets EXEC's reply
//   DISCARD    the queue is dropped
//   WATCH      the client takes a dedicated connection to its shard's server (a bounded pool
//              per server) and WATCH runs there; its other commands go the usual way, and
//              EXEC, DISCARD or UNWATCH on the dedicated connection, after which it goes back
//              to the pool clean. Each request on it waits for the client's earlier replies,
//              and the client's next requests for its reply: nothing overtakes across the two
//              connections (a watcher's pipeline waits a round trip at WATCH and EXEC)
//
// A WATCH whose connection failed (the server restarted, a reload removed it) cannot be
// honoured: EXEC answers nil without running anything, as redis does when a watched key
// changed, so the client's retry loop runs it again.
//
// Ownership: owned by the Proxy. A client's state lives until its transaction ends or it
// closes; a dedicated connection stays its server's (the state only points at it).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/backend/servers.h"
#include "proxy/clients/client_session.h"
#include "proxy/datapath/data_path.h"
#include "proxy/requests/request.h"
#include "proxy/requests/stats.h"

namespace ringproxy::proxy {

class Transactions final : public RequestHandler {
 public:
  Transactions(Worker& worker, Servers& servers, DataPath& data_path, ProxyStats& stats)
      : worker_(worker), servers_(servers), data_path_(data_path), stats_(stats) {}

  // MULTI, EXEC, DISCARD, WATCH or UNWATCH of a client that is not in a transaction.
  void start(ClientSession& client, Request& request);
  size_t clients_in_transactions() const { return states_.size(); }

  // RequestHandler: the requests of a client in a transaction.
  void dispatch(ClientSession& client, Request& request) override;
  void on_replies_written(ClientSession& client, Request* waited) override;
  void on_client_closed(ClientSession& client) override;
  bool holds_transaction(const ClientSession& client) const override { return states_.contains(&client); }

 private:
  struct State {
    bool queuing = false;                 // after MULTI
    bool aborted = false;                 // a queuing error: EXEC answers -EXECABORT
    bool writes = false;                  // some queued command writes
    bool leads = false;                   // an XADD '*': one server first (transaction.h)
    std::optional<uint32_t> shard;        // where the queued commands' keys are
    struct Queued {
      std::string bytes;                  // as the client sent it
      std::vector<std::string> args;      // a relative expiry's command: made absolute at EXEC
    };
    std::vector<Queued> commands;
    size_t queued_bytes = 0;
    std::vector<std::string> keys;        // their keys (a migration parks EXEC until they moved)
    std::shared_ptr<const Topology> topology;  // the shards the queue was checked against
    // WATCH: the dedicated connection, and how many times it had failed when taken (a
    // failure since: the server forgot the WATCH).
    std::optional<uint32_t> watched_shard;
    BackendServer* server = nullptr;
    BackendConnection* connection = nullptr;
    uint64_t connection_failures = 0;
    uint32_t lease_replies = 1;           // what the request waiting to go on it expects
    bool giving_back = false;             // EXEC, DISCARD or UNWATCH sent on it
    RequestHandler* previous = nullptr;   // the client's handler before (a RESP3 subscriber's)
  };

  void queue(State& state, Request& request);
  void exec(ClientSession& client, State& state, Request& request);
  void discard(ClientSession& client, State& state, Request& request);
  void watch(ClientSession& client, State& state, Request& request);
  // MULTI, the queued commands (a replicated shard's relative expiry made absolute now) and EXEC.
  std::string transaction_bytes(const State& state);
  // A request for the dedicated connection: sent once the client's earlier requests are
  // answered, and nothing after it is handed on before it is answered (so nothing of the
  // client's on the shared connections overtakes it, or is overtaken). `give_back`: the
  // connection goes back then (EXEC, DISCARD, UNWATCH).
  void on_connection(ClientSession& client, State& state, Request& request, uint32_t replies, bool give_back);
  void send_on_connection(ClientSession& client, State& state, Request& request);
  bool watch_lost(const State& state) const;
  bool replicated_shard(uint32_t shard) const;
  bool reads_watched_shard(const State& state, Request& request);
  // The transaction is over: the connection goes back (`clean`: the server holds nothing
  // for it), the client's requests go to the data path again.
  void end(ClientSession& client, bool clean);
  void answer(Request& request, std::string_view reply);

  Worker& worker_;
  Servers& servers_;
  DataPath& data_path_;
  ProxyStats& stats_;
  std::unordered_map<const ClientSession*, State> states_;
  std::vector<uint32_t> positions_;  // scratch
  std::vector<std::string> rewritten_;
};

}  // namespace ringproxy::proxy
