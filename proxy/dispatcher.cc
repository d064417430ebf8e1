// The data path: classify -> plan -> send -> reduce -> reply. See the diagram in proxy.h.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "proxy/backend.h"
#include "proxy/client_session.h"
#include "proxy/proxy.h"
#include "proxy/resp/reply_scanner.h"
#include "proxy/resp/writer.h"
#include "routing/keys.h"
#include "routing/planner.h"

namespace ringproxy::proxy {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Redis's wording, so clients and their users see familiar errors.
std::string unknown_command_error(std::span<const std::string_view> args) {
  std::string error = "ERR unknown command '";
  error.append(args[0].substr(0, 128)).append("', with args beginning with: ");
  for (size_t i = 1; i < args.size() && error.size() < 256; ++i) {
    error.append("'").append(args[i].substr(0, 64)).append("' ");
  }
  return error;
}

}  // namespace

// classify -> local answer, or plan -> send.
void Proxy::dispatch(ClientSession& client, Request& request) {
  ++stats_.requests;
  request.started_at_ms = now_ms();
  std::span<const std::string_view> args = request.args;

  const routing::CommandInfo* cmd = routing::find_command(args[0]);
  if (cmd == nullptr) {
    metrics_->requests_other->Increment();
    return reply_error(request, unknown_command_error(args));
  }
  if (cmd->is_container() && args.size() >= 2) {
    const routing::CommandInfo* sub = routing::find_subcommand(*cmd, args[1]);
    if (sub == nullptr) {
      metrics_->requests_other->Increment();
      return reply_error(request, "ERR unknown subcommand '" + std::string(args[1].substr(0, 128)) + "'. Try " +
                                      lower(cmd->name) + " HELP.");
    }
    cmd = sub;
  }
  request.cmd = cmd;
  if (!routing::arity_ok(*cmd, args.size())) {
    metrics_->requests_other->Increment();
    std::string name(cmd->name);
    std::replace(name.begin(), name.end(), '|', ' ');
    return reply_error(request, "ERR wrong number of arguments for '" + name + "' command");
  }

  switch (cmd->cls) {
    case routing::CommandClass::local:
      metrics_->requests_local->Increment();
      return answer_local(client, request);
    case routing::CommandClass::read: metrics_->requests_read->Increment(); break;
    case routing::CommandClass::write: metrics_->requests_write->Increment(); break;
    default: metrics_->requests_other->Increment(); break;
  }
  if (routing::has_block_option(*cmd, args)) {
    return reply_error(request, "ERR blocking " + std::string(args[0]) +
                                    " is not supported by ringproxy: a blocked server connection would stall "
                                    "every client sharing it; call it without BLOCK");
  }

  request.table = table_;
  routing::plan(*cmd, args, *table_, health(), {config_.proxy.allow_admin_commands}, plan_scratch_, plan_);
  if (plan_.kind == routing::PlanKind::reject) return reply_error(request, plan_.error);
  send_plan(request, plan_);
}

BlockRef Proxy::bytes_block(std::string_view bytes, std::string_view* view) {
  Block* block = Block::create(bytes.size());
  std::memcpy(block->data(), bytes.data(), bytes.size());
  *view = std::string_view(block->data(), bytes.size());
  return BlockRef::adopt(block);
}

// send: forward and broadcast carry the client's own bytes (rebuilt only for inline
// requests); split builds one sub-command per shard.
bool Proxy::send_plan(Request& request, const routing::Plan& plan) {
  const size_t n = plan.fragments.size();
  request.fragments.resize(n);
  request.fragments_pending = static_cast<uint32_t>(n);

  std::string_view whole = request.raw;
  BlockRef whole_block = request.request_block;
  if (whole.empty()) {  // inline request: servers get the same command as multibulk
    scratch_.clear();
    resp::append_command(scratch_, request.args);
    whole_block = bytes_block(scratch_, &whole);
  }

  if (plan.kind != routing::PlanKind::forward) {
    std::vector<std::vector<uint32_t>> slots(n);
    if (plan.kind == routing::PlanKind::split) {
      for (size_t i = 0; i < n; ++i) {
        const routing::PlannedFragment& f = plan.fragments[i];
        slots[i].assign(plan.key_slots.begin() + f.keys_begin, plan.key_slots.begin() + f.keys_end);
      }
    }
    request.reducer = std::make_unique<routing::Reducer>(plan.merge, std::move(slots), plan.key_args.size());
  }

  const bool pairs = request.cmd->fanout == routing::Fanout::split_pairs;
  for (size_t i = 0; i < n; ++i) {
    Fragment& fragment = request.fragments[i];
    fragment.request = &request;
    fragment.index = static_cast<uint32_t>(i);
    if (plan.kind == routing::PlanKind::split) {
      const routing::PlannedFragment& f = plan.fragments[i];
      size_t per_key = pairs ? 2 : 1;
      scratch_.clear();
      resp::append_array_header(scratch_, 1 + (f.keys_end - f.keys_begin) * per_key);
      resp::append_bulk(scratch_, request.args[0]);
      for (uint32_t k = f.keys_begin; k < f.keys_end; ++k) {
        uint32_t position = plan.key_args[k];
        resp::append_bulk(scratch_, request.args[position]);
        if (pairs) resp::append_bulk(scratch_, request.args[position + 1]);
      }
      fragment.bytes_block = bytes_block(scratch_, &fragment.bytes);
    } else {
      fragment.bytes = whole;
      fragment.bytes_block = whole_block;
    }
  }
  // Sent after every fragment is set up: a fragment may complete (and the request with
  // it) while the loop below runs.
  for (size_t i = 0; i < n; ++i) {
    servers_[plan.fragments[i].server]->send(request.fragments[i], request.client->id());
  }
  return true;
}

// reduce: the last fragment's reply completes the request.
void Proxy::on_fragment_done(Fragment& fragment) {
  fragment.done = true;
  Request& request = *fragment.request;
  if (request.reducer) request.reducer->add(fragment.index, fragment.reply);
  if (--request.fragments_pending > 0) return;
  finish_request(request);
}

void Proxy::finish_request(Request& request) {
  if (request.reducer) {
    request.reducer->finish(request.owned_reply);
    request.reply = request.owned_reply;
  } else {
    const Fragment& only = request.fragments.front();
    request.reply = only.reply;
    request.reply_block = only.reply_block;
  }
  if (resp::is_error_reply(request.reply)) {
    ++stats_.error_replies;
    metrics_->error_replies->Increment();
  }
  request.done = true;
  if (request.client != nullptr) {
    request.client->on_request_done(request);
  } else {
    free_request(&request);  // its client left; nobody is waiting for the reply
  }
}

void Proxy::reply_error(Request& request, std::string_view message) {
  resp::append_error(request.owned_reply, message);
  request.reply = request.owned_reply;
  ++stats_.error_replies;
  metrics_->error_replies->Increment();
  request.done = true;
  request.client->on_request_done(request);
}

void Proxy::complete_local(Request& request) {
  request.reply = request.owned_reply;
  if (resp::is_error_reply(request.reply)) {
    ++stats_.error_replies;
    metrics_->error_replies->Increment();
  }
  request.done = true;
  request.client->on_request_done(request);
}

}  // namespace ringproxy::proxy
