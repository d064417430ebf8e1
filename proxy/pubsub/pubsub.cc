#include "proxy/pubsub/pubsub.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "proxy/backend/backend_server.h"
#include "routing/resp/writer.h"

namespace ringproxy::proxy {
namespace {

// A subscriber that stopped reading is closed past either (redis's pub/sub hard limit: 32 MiB).
constexpr size_t kMaxQueuedMessages = 100000;
constexpr size_t kMaxUnwrittenBytes = 32u << 20;

std::string_view text_of(const redisReply& reply) { return std::string_view(reply.str, reply.len); }

// PUBSUB CHANNELS | NUMSUB | NUMPAT ...: every shard's pub/sub server asked on a side link of
// its own, the replies merged (a channel lives on one shard; a pattern on all of them).
class PubsubQuery {
 public:
  static void start(Servers& servers, DataPath& data_path, Request& request, std::vector<uint32_t> targets) {
    auto* job = new PubsubQuery(data_path, request);
    request.fragments_pending = 1;  // (a token: the request lives until answered, client or not)
    Worker& worker = servers.worker();
    uv_timer_init(worker.loop(), &job->timer_);
    job->timer_.data = job;
    const conf::PoolConfig& pool = worker.config().pool;
    uv_timer_start(&job->timer_, on_timeout, pool.connect_timeout_ms + pool.request_timeout_ms, 0);
    job->sub_ = std::string(request.cmd->name.substr(request.cmd->name.find('|') + 1));
    const std::vector<std::string> args(request.args.begin(), request.args.end());
    for (uint32_t index : targets) {
      std::string why;
      SideLink* link = SideLink::open(servers.servers()[index]->login(), worker, job, on_connect, on_disconnect, &why);
      if (link == nullptr) {
        job->error_ = "ERR " + why;
        continue;
      }
      job->links_.push_back(link);
      ++job->outstanding_;
      link->command_args(on_reply, nullptr, args);
    }
    if (job->outstanding_ == 0) job->finish();
  }

 private:
  PubsubQuery(DataPath& data_path, Request& request) : data_path_(data_path), request_(&request) {}

  static void on_connect(SideLink* link, bool ok) {
    auto* self = static_cast<PubsubQuery*>(link->data());
    if (!ok) self->done(link, "ERR " + link->error_or("cannot connect"));
  }
  static void on_disconnect(SideLink* link) {
    auto* self = static_cast<PubsubQuery*>(link->data());
    self->done(link, "ERR " + link->error_or("connection closed"));
  }
  static void on_reply(SideLink* link, redisReply* reply, void*) {
    auto* self = static_cast<PubsubQuery*>(link->data());
    if (reply == nullptr || self->finished_) return;
    if (reply->type == REDIS_REPLY_ERROR) return self->done(link, std::string(text_of(*reply)));
    if (reply->type == REDIS_REPLY_INTEGER) {
      self->numpat_ = std::max(self->numpat_, reply->integer);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
      const bool counts = self->sub_ == "numsub" || self->sub_ == "shardnumsub";
      for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply& e = *reply->element[i];
        if (!counts) {
          if (e.type == REDIS_REPLY_STRING) self->names_.emplace(text_of(e));
        } else if (i % 2 == 1 && e.type == REDIS_REPLY_INTEGER) {
          const size_t at = i / 2;
          if (self->sums_.size() <= at) self->sums_.resize(at + 1, 0);
          self->sums_[at] += e.integer;
        }
      }
    }
    self->done(link, "");
  }
  static void on_timeout(uv_timer_t* timer) {
    auto* self = static_cast<PubsubQuery*>(timer->data);
    if (self->error_.empty()) self->error_ = "ERR no reply from every shard in time";
    self->finish();
  }
  static void on_timer_closed(uv_handle_t* handle) { delete static_cast<PubsubQuery*>(handle->data); }

  void done(SideLink* link, std::string error) {
    auto it = std::find(links_.begin(), links_.end(), link);
    if (it == links_.end() || finished_) return;
    *it = nullptr;
    if (!error.empty() && error_.empty()) error_ = std::move(error);
    link->close();
    if (--outstanding_ == 0) finish();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    for (SideLink*& link : links_) {
      if (link != nullptr) std::exchange(link, nullptr)->close();
    }
    Request& request = *request_;
    std::string& out = request.owned_reply;
    out.clear();
    if (!error_.empty()) {
      resp::append_error(out, error_);
    } else if (sub_ == "numpat") {
      resp::append_integer(out, numpat_);
    } else if (sub_ == "numsub" || sub_ == "shardnumsub") {
      const size_t channels = request.args.size() - 2;
      resp::append_array_header(out, channels * 2);  // (a flat array in RESP3 too, as redis's)
      for (size_t i = 0; i < channels; ++i) {
        resp::append_bulk(out, request.args[2 + i]);
        resp::append_integer(out, i < sums_.size() ? sums_[i] : 0);
      }
    } else {
      resp::append_array_header(out, names_.size());
      for (const std::string& name : names_) resp::append_bulk(out, name);
    }
    data_path_.complete_async_local(request);
    uv_timer_stop(&timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_timer_closed);
  }

  DataPath& data_path_;
  Request* request_;
  std::string sub_;
  uv_timer_t timer_{};
  std::vector<SideLink*> links_;
  size_t outstanding_ = 0;
  bool finished_ = false;
  std::string error_;
  std::set<std::string> names_;
  std::vector<long long> sums_;
  long long numpat_ = 0;
};

}  // namespace

PubSub::~PubSub() = default;

void PubSub::stop() {
  std::vector<ClientSession*> clients;
  for (auto& [client, subscriber] : subscribers_) clients.push_back(client);
  for (ClientSession* client : clients) drop(*client);
}

std::optional<uint32_t> PubSub::server_of_shard(uint32_t shard) const {
  const routing::RoutingTable& table = *servers_.topology()->table;
  return routing::pubsub_server(table.shards()[shard], const_cast<Servers&>(servers_).health_for_request());
}

bool PubSub::subscribed(const Subscriber& subscriber) const {
  for (const auto& set : subscriber.subscribed) {
    if (!set.empty()) return true;
  }
  return false;
}

// What a confirmation counts: channels and patterns together, shard channels apart (as redis).
int64_t PubSub::count(const Subscriber& subscriber, routing::PubSubFamily family) const {
  return static_cast<int64_t>(family == routing::PubSubFamily::shard_channel
                                  ? subscriber.subscribed[2].size()
                                  : subscriber.subscribed[0].size() + subscriber.subscribed[1].size());
}

void PubSub::command(ClientSession& client, Request& request) {
  const std::string_view name = request.cmd->name;
  if (std::optional<routing::SubscriptionCommand> what = routing::subscription_command(name)) {
    return subscription(client, request, *what);
  }
  if (name == "publish" || name == "spublish") return publish(request);
  query(client, request);
}

void PubSub::publish(Request& request) {
  const routing::RoutingTable& table = *servers_.topology()->table;
  const uint32_t shard = table.shard_of_cold(request.args[1]);
  const std::optional<uint32_t> server = server_of_shard(shard);
  if (!server) {
    return data_path_.reply_error(request, "ERR shard '" + table.shards()[shard].name +
                                               "' has no live server for its channels now");
  }
  data_path_.send_to_server(request, *server);
}

void PubSub::query(ClientSession&, Request& request) {
  const routing::RoutingTable& table = *servers_.topology()->table;
  std::vector<uint32_t> targets;
  for (uint32_t shard = 0; shard < table.shards().size(); ++shard) {
    const std::optional<uint32_t> server = server_of_shard(shard);
    if (!server) {
      return data_path_.reply_error(request, "ERR shard '" + table.shards()[shard].name +
                                                 "' has no live server for its channels now");
    }
    targets.push_back(*server);
  }
  PubsubQuery::start(servers_, data_path_, request, std::move(targets));
}

PubSub::Link* PubSub::link_to(ClientSession& client, Subscriber& subscriber, uint32_t index, std::string& error) {
  BackendServer* server = servers_.servers()[index].get();
  for (Link* link : subscriber.links) {
    if (link->server == server) return link;
  }
  if (!server->take_subscriber_slot(error)) return nullptr;
  auto* link = new Link{this, &client, server, nullptr};
  std::string why;
  link->link = SideLink::open(server->login(), worker_, link, on_connect, on_disconnect, &why);
  if (link->link == nullptr) {
    delete link;
    server->give_back_subscriber_slot();
    error = "ERR cannot reach server " + server->name() + ": " + why;
    return nullptr;
  }
  link->link->set_push_handler(on_push);
  subscriber.links.push_back(link);
  return link;
}

// (P|S)(UN)SUBSCRIBE: the client's sets change now, in order (so a pipelined UNSUBSCRIBE
// finds what the SUBSCRIBE before it added), and the reply waits for the servers.
void PubSub::subscription(ClientSession& client, Request& request, const routing::SubscriptionCommand& what) {
  const routing::RoutingTable& table = *servers_.topology()->table;
  const size_t family = static_cast<size_t>(what.family);
  auto found = subscribers_.find(&client);
  if (found == subscribers_.end() && !what.subscribe) {  // nothing to end: redis's answers
    std::string& out = request.owned_reply;
    if (request.args.size() == 1) out = routing::confirmation(what.kind, std::nullopt, 0, client.protocol());
    for (size_t i = 1; i < request.args.size(); ++i) {
      out += routing::confirmation(what.kind, request.args[i], 0, client.protocol());
    }
    return data_path_.complete_local(request);
  }
  const bool entering = found == subscribers_.end();
  Subscriber& subscriber = subscribers_[&client];

  // Where each name goes: its shard's server (a pattern: every shard's).
  std::vector<std::string> names(request.args.begin() + 1, request.args.end());
  if (!what.subscribe && names.empty()) {
    for (const auto& [name, links] : subscriber.subscribed[family]) names.push_back(name);
  }
  std::vector<std::vector<Link*>> targets(names.size());
  std::string error;
  for (size_t i = 0; i < names.size() && error.empty(); ++i) {
    if (!what.subscribe) {
      auto it = subscriber.subscribed[family].find(names[i]);
      if (it != subscriber.subscribed[family].end()) targets[i] = it->second;
      continue;
    }
    std::vector<uint32_t> shards;
    if (what.family == routing::PubSubFamily::pattern) {
      for (uint32_t s = 0; s < table.shards().size(); ++s) shards.push_back(s);
    } else {
      shards.push_back(table.shard_of_cold(names[i]));
    }
    for (uint32_t shard : shards) {
      const std::optional<uint32_t> server = server_of_shard(shard);
      Link* link = server ? link_to(client, subscriber, *server, error) : nullptr;
      if (!server) error = "ERR shard '" + table.shards()[shard].name + "' has no live server for its channels now";
      if (link == nullptr) break;
      targets[i].push_back(link);
    }
  }
  if (!error.empty()) {  // nothing was sent
    data_path_.reply_error(request, error);
    if (entering) leave_if_done(client);
    return;
  }
  if (entering) {
    ++stats_.subscribers;
    // Its requests come here (unless a WATCH holds them: its transaction's, until it ends).
    if (data_path_.is_entry(client.handler())) {
      subscriber.handles = true;
      client.set_handler(this);
    }
  }

  // The sets change now; the counts are those after each name, as redis counts them.
  Awaited awaited;
  awaited.request = &request;
  std::string& out = request.owned_reply;
  out.clear();
  if (names.empty()) out = routing::confirmation(what.kind, std::nullopt, count(subscriber, what.family), client.protocol());
  std::map<Link*, std::vector<std::string>> per_link;
  for (size_t i = 0; i < names.size(); ++i) {
    auto& set = subscriber.subscribed[family];
    if (what.subscribe) {
      set[names[i]] = targets[i];
    } else {
      set.erase(names[i]);
    }
    out += routing::confirmation(what.kind, names[i], count(subscriber, what.family), client.protocol());
    awaited.items.push_back({what, names[i], static_cast<uint32_t>(targets[i].size())});
    for (Link* link : targets[i]) per_link[link].push_back(names[i]);
  }
  for (auto& [link, link_names] : per_link) {
    std::vector<std::string> args = {std::string(request.args[0])};
    args.insert(args.end(), link_names.begin(), link_names.end());
    link->link->send_only(args);
  }
  request.fragments_pending = 1;  // (a token: answered once every server confirmed)
  subscriber.awaited.push_back(std::move(awaited));
  answer_confirmed(subscriber);
}

// The awaited commands every server has confirmed are answered, oldest first.
void PubSub::answer_confirmed(Subscriber& subscriber) {
  while (!subscriber.awaited.empty()) {
    Awaited& front = subscriber.awaited.front();
    const bool all = std::all_of(front.items.begin(), front.items.end(), [](const Item& i) { return i.remaining == 0; });
    if (!all) return;
    Request* request = front.request;
    subscriber.awaited.pop_front();
    data_path_.complete_async_local(*request);
  }
}

void PubSub::confirmed(Link& link, std::string_view kind, std::string_view name) {
  auto found = subscribers_.find(link.client);
  if (found == subscribers_.end()) return;
  Subscriber& subscriber = found->second;
  for (Awaited& awaited : subscriber.awaited) {
    for (Item& item : awaited.items) {
      if (item.remaining > 0 && item.what.kind == kind && item.name == name) {
        --item.remaining;
        answer_confirmed(subscriber);
        ClientSession* client = link.client;
        return leave_if_done(*client);
      }
    }
  }
}

void PubSub::on_push(SideLink* side, redisReply* reply, void*) {
  Link& link = *static_cast<Link*>(side->data());
  if (link.client == nullptr) return;  // closed by us
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
      reply->element[0]->type != REDIS_REPLY_STRING) {
    return;
  }
  const std::string_view kind = text_of(*reply->element[0]);
  if (kind == "message" || kind == "pmessage" || kind == "smessage") return link.owner->forward(link, *reply);
  if (reply->element[1]->type == REDIS_REPLY_STRING) link.owner->confirmed(link, kind, text_of(*reply->element[1]));
}

void PubSub::forward(Link& link, const redisReply& reply) {
  ClientSession& client = *link.client;
  auto found = subscribers_.find(&client);
  if (found == subscribers_.end()) return;
  if (client.pending() > kMaxQueuedMessages || client.unwritten_bytes() > kMaxUnwrittenBytes) {
    spdlog::warn("client {} ({}): {} pub/sub messages ({} bytes) wait for it to read them: closing it, as redis "
                 "closes a subscriber past its output limit", client.id(), client.peer(), client.pending(),
                 client.unwritten_bytes());
    return client.close();
  }
  std::vector<std::string_view> parts;
  for (size_t i = 0; i < reply.elements; ++i) {
    const redisReply& e = *reply.element[i];
    parts.push_back(e.type == REDIS_REPLY_STRING ? text_of(e) : std::string_view());
  }
  ++stats_.messages_forwarded;
  client.push(routing::push_of(parts, client.protocol()), &routing::push_marker());
}

void PubSub::on_connect(SideLink* side, bool ok) {
  if (ok) return;
  Link& link = *static_cast<Link*>(side->data());
  if (link.client == nullptr) return;
  link.owner->link_failed(link, side->error_or("cannot connect"));
}

void PubSub::on_disconnect(SideLink* side) {
  auto* link = static_cast<Link*>(side->data());
  if (link->client == nullptr) {  // closed by us: its end was all it waited for
    delete link;
    return;
  }
  link->owner->link_failed(*link, side->error_or("connection closed"));
}

void PubSub::close_link(Link* link) {
  SideLink* side = std::exchange(link->link, nullptr);
  link->client = nullptr;  // (its callbacks from now on only free it)
  if (side == nullptr) {
    delete link;
    return;
  }
  const bool reports = side->connected();
  side->close();  // (may report at once: on_disconnect frees it)
  if (!reports) delete link;
}

// A server the client listens on is gone: it is told, and closed, so that it subscribes again.
void PubSub::link_failed(Link& link, std::string_view why, bool gone) {
  ClientSession& client = *link.client;
  auto found = subscribers_.find(&client);
  if (found == subscribers_.end()) return;
  if (gone) link.link = nullptr;  // (not closed again)
  const std::string error = "ERR server " + link.server->name() + " (shard '" + link.server->shard_name() +
                            "') that this client's subscriptions listen on is gone (" + std::string(why) +
                            "): subscribe again";
  spdlog::info("client {}: subscriptions on {} lost ({}): closing it so that it subscribes again", client.id(),
               link.server->name(), why);
  ++stats_.subscribers_dropped;
  for (Awaited& awaited : found->second.awaited) {
    awaited.request->owned_reply.clear();
    resp::append_error(awaited.request->owned_reply, error);
    data_path_.complete_async_local(*awaited.request);
  }
  found->second.awaited.clear();
  std::string line;
  resp::append_error(line, error);
  client.push(line, &routing::push_marker());
  drop(client);
  client.close_after_replies();
}

void PubSub::dispatch(ClientSession& client, Request& request) {
  auto found = subscribers_.find(&client);
  if (found == subscribers_.end()) {  // (not ours any more: back to the data path)
    client.set_handler(&data_path_.handler_for(client));
    return client.handler().dispatch(client, request);
  }
  if (client.protocol() == 3) DataPath::take_resp3_bytes(request);  // as the data path's RESP3 entry does
  if (!data_path_.classify_request(client, request)) return;
  const std::string_view name = request.cmd->name;
  if (routing::subscription_command(name)) return command(client, request);
  // RESP2's subscribed mode: only (un)subscribing, PING, QUIT and RESET.
  if (client.protocol() == 2 && subscribed(found->second)) {
    if (name == "ping") {
      request.owned_reply = routing::subscribed_pong(
          request.args.size() > 1 ? std::optional<std::string_view>(request.args[1]) : std::nullopt);
      return data_path_.complete_local(request);
    }
    if (!routing::allowed_when_subscribed(name)) {
      return data_path_.reply_error(request, routing::subscribed_mode_error(name));
    }
  }
  data_path_.carry_out_request(client, request);  // (PUBLISH, PUBSUB, RESET: LocalCommands)
}

void PubSub::on_replies_written(ClientSession& client, Request* waited) {
  data_path_.on_replies_written(client, waited);
}

void PubSub::close_subscribers() {
  std::vector<ClientSession*> sessions;  // (drop() changes subscribers_)
  for (const auto& [session, subscriber] : subscribers_) sessions.push_back(session);
  for (ClientSession* session : sessions) drop(*session);
}

void PubSub::sweep() {
  const std::shared_ptr<const Topology>& topology = servers_.topology();
  if (topology.get() == checked_topology_ || subscribers_.empty()) {
    checked_topology_ = topology.get();
    return;
  }
  checked_topology_ = topology.get();
  // Which links are wrong now: their server was removed, or a name they carry belongs to
  // another server.
  std::vector<Link*> failed;
  for (auto& [client, subscriber] : subscribers_) {
    for (Link* link : subscriber.links) {
      if (!servers_.current(link->server) || link->server->detached()) failed.push_back(link);
    }
    for (size_t family = 0; family < kFamilies; ++family) {
      for (const auto& [name, links] : subscriber.subscribed[family]) {
        for (Link* link : links) {
          if (std::find(failed.begin(), failed.end(), link) != failed.end()) continue;
          std::optional<uint32_t> server;
          if (family != static_cast<size_t>(routing::PubSubFamily::pattern)) {
            server = server_of_shard(topology->table->shard_of_cold(name));
          } else {
            continue;  // (a pattern's links: checked by their servers above)
          }
          if (!server || servers_.servers()[*server].get() != link->server) failed.push_back(link);
        }
      }
    }
  }
  for (Link* link : failed) {
    if (link->client != nullptr && subscribers_.contains(link->client)) {
      link_failed(*link, "a reload moved its channels to another server, or removed it", false);
    }
  }
}

void PubSub::on_client_closed(ClientSession& client) {
  auto found = subscribers_.find(&client);
  if (found == subscribers_.end()) return;
  for (Awaited& awaited : found->second.awaited) data_path_.complete_async_local(*awaited.request);
  found->second.awaited.clear();
  drop(client);
}

void PubSub::leave_if_done(ClientSession& client) {
  auto found = subscribers_.find(&client);
  if (found == subscribers_.end() || subscribed(found->second)) return;
  drop(client);
}

void PubSub::drop(ClientSession& client) {
  auto found = subscribers_.find(&client);
  if (found == subscribers_.end()) return;
  Subscriber& subscriber = found->second;
  for (Awaited& awaited : subscriber.awaited) data_path_.complete_async_local(*awaited.request);
  for (Link* link : subscriber.links) {
    link->server->give_back_subscriber_slot();  // (a removed server drains until it has them all back)
    close_link(link);
  }
  subscribers_.erase(found);
  --stats_.subscribers;
  if (&client.handler() == this) client.set_handler(&data_path_.handler_for(client));
}

}  // namespace ringproxy::proxy
