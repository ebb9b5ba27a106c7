#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/json_input.h"
#include "model/added_tokens.h"
#include "model/byte_level.h"

namespace kvlab {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// Reading tokenizer.json with errors that name the file and the field.

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json parse_json_file(const std::string& path) { return parse_json_input(read_text_file(path), path); }

class JsonFields {
 public:
  explicit JsonFields(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail_at(const std::string& field, const std::string& message) const {
    fail(path_ + ": " + field + ": " + message);
  }
  const json& object(const json& j, const std::string& field) const {
    if (!j.is_object()) fail_at(field, "expected an object");
    return j;
  }
  const json& get(const json& obj, const std::string& field, const char* key) const {
    object(obj, field);
    auto it = obj.find(key);
    if (it == obj.end()) fail_at(field + "." + key, "missing field");
    return *it;
  }
  const std::string& string(const json& obj, const std::string& field, const char* key) const {
    const json& v = get(obj, field, key);
    if (!v.is_string()) fail_at(field + "." + key, "expected a string");
    return v.get_ref<const std::string&>();
  }
  bool boolean(const json& obj, const std::string& field, const char* key, bool fallback) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail_at(field + "." + key, "expected true or false");
    return it->get<bool>();
  }
  // Ids index dense tables, so an absurd one (a broken file) is refused rather than allocated for.
  static constexpr int64_t kMaxId = 1 << 24;
  static bool is_id(const json& v) {
    return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < kMaxId;
  }
  int32_t id(const json& v, const std::string& field) const {
    if (!is_id(v)) fail_at(field, "expected a token id (an integer from 0 to 2^24 - 1)");
    return int32_t(v.get<int64_t>());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Normalizers (Unicode normal forms only: the byte-level family uses NFC or nothing).

enum class NormalForm { NFC, NFD, NFKC, NFKD };

std::string normalize(std::string_view text, NormalForm form) {
  // Text below U+0300 is already NFC: only a combining mark (U+0300 and up) could change it.
  // Every byte of such text is below 0xCC; ASCII is stable under all four forms.
  bool stable = true;
  for (char ch : text) {
    uint8_t b = uint8_t(ch);
    if (b >= 0x80 && (form != NormalForm::NFC || b >= 0xCC)) {
      stable = false;
      break;
    }
  }
  if (stable) return std::string(text);
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::NFC: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::NFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    utf8proc_ssize_t(text.size()), &out, utf8proc_option_t(options));
  if (n < 0) fail(std::string("Unicode normalization failed: ") + utf8proc_errmsg(n), kExitInternal);
  std::string result(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
  return result;
}

void parse_normalizer(const json& j, const std::string& field, const JsonFields& f,
                      std::vector<NormalForm>& out) {
  if (j.is_null()) return;
  const std::string& type = f.string(j, field, "type");
  if (type == "Sequence") {
    const json& list = f.get(j, field, "normalizers");
    if (!list.is_array()) f.fail_at(field + ".normalizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      parse_normalizer(list[i], field + ".normalizers[" + std::to_string(i) + "]", f, out);
  } else if (type == "NFC") {
    out.push_back(NormalForm::NFC);
  } else if (type == "NFD") {
    out.push_back(NormalForm::NFD);
  } else if (type == "NFKC") {
    out.push_back(NormalForm::NFKC);
  } else if (type == "NFKD") {
    out.push_back(NormalForm::NFKD);
  } else {
    f.fail_at(field + ".type", "normalizer '" + type + "' is not supported (only NFC, NFD, NFKC, "
                               "NFKD and Sequence of them)");
  }
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer regexes. HF compiles them with Oniguruma; PCRE2 with UTF and Unicode properties
// agrees on these patterns except that PCRE2's \s also takes U+180E, so \s and \S are spelled
// out as Oniguruma's set: \t-\r, U+0085 and the Z (separator) categories.

std::string with_oniguruma_spaces(std::string_view pattern) {
  const std::string space = "\\t-\\r\\x{85}\\p{Z}";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[++i];
      if (e == 's')
        out += in_class ? space : "[" + space + "]";
      else if (e == 'S' && !in_class)
        out += "[^" + space + "]";
      else
        out += {c, e};
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // literal ']'
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      size_t end = pattern.find(":]", i + 2);  // a POSIX class such as [:alpha:]
      if (end != std::string_view::npos) {
        out.append(pattern.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

// Per-thread match state: PCRE2 match data and a JIT stack that grows for long whitespace runs.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchScratch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

class Regex {
 public:
  Regex(const std::string& pattern, bool literal, const std::string& where) {
    std::string source = literal ? pattern : with_oniguruma_spaces(pattern);
    uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                                     options, &error, &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail(where + ": cannot compile the regex /" + pattern + "/ (" +
           reinterpret_cast<const char*>(message) + " at offset " + std::to_string(offset) + ")");
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without a JIT, matching is slower, not wrong
    code_.reset(code, pcre2_code_free);
  }

  // Calls emit(piece) for each match and each stretch between matches, in order: HF's Split
  // with behavior "Isolated". Pieces are never empty. `text` must be valid UTF-8.
  template <class Emit>
  void split_isolated(std::string_view text, Emit&& emit) const {
    thread_local MatchScratch scratch;
    auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch.data);
    size_t emitted = 0, pos = 0;
    while (pos < text.size()) {
      int rc = pcre2_match(code_.get(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK,
                           scratch.data, scratch.context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) fail("pre-tokenizer regex failed with PCRE2 error " + std::to_string(rc));
      size_t start = ovector[0], end = ovector[1];
      if (end == start) {  // an empty match splits nothing; look again one character on
        next_code_point(text, pos = start);
        continue;
      }
      if (emitted < start) emit(text.substr(emitted, start - emitted));
      emit(text.substr(start, end - start));
      emitted = pos = end;
    }
    if (emitted < text.size()) emit(text.substr(emitted));
  }

 private:
  std::shared_ptr<pcre2_code> code_;
};

// GPT-2's own split, used by a ByteLevel pre-tokenizer with use_regex true.
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct PreTokenizerStep {
  std::optional<Regex> regex;     // splits each piece (Split, or ByteLevel with use_regex)
  bool add_prefix_space = false;  // ByteLevel: each piece gets a leading space if it lacks one
};

void parse_pre_tokenizer(const json& j, const std::string& field, const JsonFields& f,
                         std::vector<PreTokenizerStep>& out, bool& byte_level) {
  const std::string& type = f.string(j, field, "type");
  if (type == "Sequence") {
    const json& list = f.get(j, field, "pretokenizers");
    if (!list.is_array()) f.fail_at(field + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      parse_pre_tokenizer(list[i], field + ".pretokenizers[" + std::to_string(i) + "]", f, out,
                          byte_level);
  } else if (type == "Split") {
    const std::string& behavior = f.string(j, field, "behavior");
    if (behavior != "Isolated")
      f.fail_at(field + ".behavior", "Split behavior '" + behavior + "' is not supported (only Isolated)");
    if (f.boolean(j, field, "invert", false)) f.fail_at(field + ".invert", "invert true is not supported");
    const json& pattern = f.object(f.get(j, field, "pattern"), field + ".pattern");
    PreTokenizerStep step;
    if (pattern.contains("Regex"))
      step.regex.emplace(f.string(pattern, field + ".pattern", "Regex"), false, f.path() + ": " + field);
    else
      step.regex.emplace(f.string(pattern, field + ".pattern", "String"), true, f.path() + ": " + field);
    out.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    byte_level = true;
    PreTokenizerStep step;
    step.add_prefix_space = f.boolean(j, field, "add_prefix_space", true);
    if (f.boolean(j, field, "use_regex", true)) step.regex.emplace(kGpt2Pattern, false, "GPT-2 regex");
    out.push_back(std::move(step));
  } else {
    f.fail_at(field + ".type", "pre-tokenizer '" + type +
                                   "' is not supported (only Split, ByteLevel and Sequence of them)");
  }
}

// ---------------------------------------------------------------------------------------------
// Open addressing for the two hot lookups (vocabulary and merge ranks): one probe run in a flat
// array, the full hash stored beside each key so most misses never touch the key's bytes.

// Holds at most the number of keys it was reserved for; reserve() also empties it.
template <class Key, class Hash>
class FlatMap {
 public:
  void reserve(size_t n) {
    size_t capacity = 16;
    while (capacity < 2 * n) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    size_ = 0;
  }
  // Inserts, or overwrites the value of an equal key.
  void put(const Key& key, int64_t value) {
    uint64_t h = hash(key);
    size_t i = h & mask_;
    while (slots_[i].hash != 0 && !(slots_[i].hash == h && slots_[i].key == key)) i = (i + 1) & mask_;
    if (slots_[i].hash == 0) KVLAB_ASSERT(2 * ++size_ <= slots_.size());
    slots_[i] = {h, key, value};
  }
  const int64_t* find(const Key& key) const {
    if (slots_.empty()) return nullptr;
    uint64_t h = hash(key);
    for (size_t i = h & mask_; slots_[i].hash != 0; i = (i + 1) & mask_)
      if (slots_[i].hash == h && slots_[i].key == key) return &slots_[i].value;
    return nullptr;
  }

 private:
  struct Slot {
    uint64_t hash = 0;  // 0 marks an empty slot
    Key key{};
    int64_t value = 0;
  };
  static uint64_t hash(const Key& key) { return Hash{}(key) | 1; }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

struct PairHash {  // a multiply mixes both packed ids upwards; folding brings them to the low bits
  uint64_t operator()(uint64_t key) const {
    uint64_t x = key * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 32);
  }
};
using StringIds = FlatMap<std::string_view, std::hash<std::string_view>>;

// ---------------------------------------------------------------------------------------------
// The BPE model, on raw bytes: each byte starts as the token that spells it, then the adjacent
// pair with the lowest merge rank is merged (leftmost first on ties) until no pair has a rank.

// A merge as stored: rank in the high half, the merged token's id in the low half.
int64_t pack_merge(int32_t rank, int32_t id) { return (int64_t(rank) << 32) | uint32_t(id); }
int32_t merge_rank(int64_t m) { return int32_t(m >> 32); }
int32_t merge_id(int64_t m) { return int32_t(uint32_t(m)); }

uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

struct Bpe {
  std::string vocab_arena;                               // raw bytes of every reachable token
  StringIds vocab;                                       // raw bytes -> id, views into the arena
  std::unordered_map<std::string, int32_t> unreachable;  // spellings outside the byte alphabet
  FlatMap<uint64_t, PairHash> merges;                    // pair_key -> pack_merge(rank, id)
  int32_t byte_ids[256];       // the token of each single byte, or -1
  int32_t fallback_ids[256];   // "<0xAB>" tokens for byte_fallback, or -1
  std::optional<int32_t> unk_id;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;  // a piece that is itself a token is used whole (Llama-3)
};

struct Symbol {
  int32_t id;
  int32_t prev, next;  // neighbours in the current segmentation, -1 at the ends
  bool alive;
};

struct QueuedMerge {
  int32_t rank, pos, id;
  // std heap functions keep the largest on top; make the lowest rank, then leftmost, largest.
  bool operator<(const QueuedMerge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

void bpe_merge(const Bpe& bpe, std::string_view piece, std::vector<int32_t>& out) {
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<QueuedMerge> queue;
  symbols.clear();
  queue.clear();
  auto add = [&](int32_t id) {
    int32_t n = int32_t(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  };
  // Bytes without a token, as HF's merge_word treats characters missing from the vocabulary.
  int32_t pending_unk = -1;
  for (char ch : piece) {
    uint8_t b = uint8_t(ch);
    if (bpe.byte_ids[b] >= 0) {
      if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
      add(bpe.byte_ids[b]);
    } else if (bpe.byte_fallback && bpe.fallback_ids[b] >= 0) {
      add(bpe.fallback_ids[b]);
    } else if (bpe.unk_id) {
      if (pending_unk >= 0 && !bpe.fuse_unk) add(pending_unk);
      pending_unk = *bpe.unk_id;
    }
  }
  if (pending_unk >= 0) add(pending_unk);

  auto push_if_mergeable = [&](int32_t pos) {
    int32_t next = symbols[pos].next;
    if (next < 0) return;
    const int64_t* m = bpe.merges.find(pair_key(symbols[pos].id, symbols[next].id));
    if (!m) return;
    queue.push_back({merge_rank(*m), pos, merge_id(*m)});
    std::push_heap(queue.begin(), queue.end());
  };
  for (int32_t i = 0; i + 1 < int32_t(symbols.size()); ++i) push_if_mergeable(i);

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end());
    QueuedMerge top = queue.back();
    queue.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // A queued pair is stale when either side has merged since; the pair now at `pos` then
    // spells a longer string, so it cannot merge into the same token.
    const int64_t* m = bpe.merges.find(pair_key(left.id, symbols[left.next].id));
    if (!m || merge_id(*m) != top.id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_if_mergeable(left.prev);
    push_if_mergeable(top.pos);
  }
  for (const Symbol& s : symbols)
    if (s.alive) out.push_back(s.id);
}

// Recent pieces and their ids, per thread, in flat arenas; emptied when full, so it holds what
// the text at hand uses. Keys are views into `bytes`, which never reallocates.
class PieceCache {
 public:
  static constexpr size_t kMaxPieceBytes = 64;  // a piece has at most one id per byte

  PieceCache() {
    bytes_.reserve(kBytes);
    index_.reserve(kEntries);
  }
  // The cached ids of `piece` for tokenizer `owner`, or nullptr.
  const int32_t* find(uint64_t owner, std::string_view piece, size_t& count) {
    if (owner != owner_) {
      clear();
      owner_ = owner;
    }
    const int64_t* entry = index_.find(piece);
    if (!entry) return nullptr;
    count = size_t(*entry & 0xFF);
    return ids_.data() + (*entry >> 8);
  }
  void add(std::string_view piece, const int32_t* ids, size_t count) {
    if (entries_ == kEntries || bytes_.size() + piece.size() > kBytes) clear();
    size_t at = bytes_.size();
    bytes_.append(piece);
    index_.put(std::string_view(bytes_).substr(at, piece.size()), int64_t(ids_.size() << 8 | count));
    ids_.insert(ids_.end(), ids, ids + count);
    ++entries_;
  }

 private:
  static constexpr size_t kEntries = 1 << 15;
  static constexpr size_t kBytes = 1 << 20;
  static_assert(kMaxPieceBytes <= 0xFF, "an id count must fit the entry's low byte");
  void clear() {
    bytes_.clear();
    ids_.clear();
    index_.reserve(kEntries);
    entries_ = 0;
  }
  uint64_t owner_ = 0;
  std::string bytes_;
  std::vector<int32_t> ids_;
  FlatMap<std::string_view, std::hash<std::string_view>> index_;  // piece -> ids offset << 8 | count
  size_t entries_ = 0;
};

std::atomic<uint64_t> next_tokenizer_serial{1};

std::string find_tokenizer_json(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::string file = (fs::path(path) / "tokenizer.json").string();
    if (!fs::exists(file, ec)) fail(path + ": directory has no tokenizer.json");
    return file;
  }
  if (!fs::exists(path, ec)) fail(path + ": no such file");
  return path;
}

// "eos_token": "<|eot_id|>" or {"content": "<|eot_id|>", ...}
std::optional<std::string> token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  std::string path;
  uint64_t serial = 0;
  AddedTokenMatcher raw_matcher;         // added tokens with normalized false, found in raw text
  AddedTokenMatcher normalized_matcher;  // the others, found after normalization
  std::unordered_map<std::string, int32_t> added_ids;  // content -> id
  std::vector<NormalForm> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizer;
  Bpe bpe;
  std::vector<int32_t> special_prefix, special_suffix;  // the post-processor's single template
  std::vector<std::string> bytes_of_id;  // what each id decodes to
  std::vector<bool> known_id;
  std::vector<int32_t> eos_ids;
  std::string chat_template;

  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
  void pre_tokenize(std::string_view text, size_t step, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
};

void Tokenizer::Impl::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  if (raw_matcher.empty()) return encode_ordinary(text, out);
  std::vector<TextPiece> pieces;
  raw_matcher.split(text, pieces);
  for (const TextPiece& p : pieces) {
    if (p.token_id >= 0)
      out.push_back(p.token_id);
    else
      encode_ordinary(p.text, out);
  }
}

void Tokenizer::Impl::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::string normalized;
  if (!normalizers.empty()) {
    normalized = std::string(text);
    for (NormalForm form : normalizers) normalized = normalize(normalized, form);
    text = normalized;
  }
  if (normalized_matcher.empty()) return pre_tokenize(text, 0, out);
  std::vector<TextPiece> pieces;
  normalized_matcher.split(text, pieces);
  for (const TextPiece& p : pieces) {
    if (p.token_id >= 0)
      out.push_back(p.token_id);
    else
      pre_tokenize(p.text, 0, out);
  }
}

void Tokenizer::Impl::pre_tokenize(std::string_view text, size_t step,
                                   std::vector<int32_t>& out) const {
  if (step == pre_tokenizer.size()) return encode_piece(text, out);
  const PreTokenizerStep& s = pre_tokenizer[step];
  std::string prefixed;
  if (s.add_prefix_space && text.front() != ' ') {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  if (s.regex)
    s.regex->split_isolated(text, [&](std::string_view piece) { pre_tokenize(piece, step + 1, out); });
  else
    pre_tokenize(text, step + 1, out);
}

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (bpe.ignore_merges) {
    if (const int64_t* id = bpe.vocab.find(piece)) return out.push_back(int32_t(*id));
  }
  if (piece.size() > PieceCache::kMaxPieceBytes) return bpe_merge(bpe, piece, out);
  thread_local PieceCache cache;
  size_t count = 0;
  if (const int32_t* ids = cache.find(serial, piece, count)) {
    out.insert(out.end(), ids, ids + count);
    return;
  }
  size_t first = out.size();
  bpe_merge(bpe, piece, out);
  cache.add(piece, out.data() + first, out.size() - first);
}

// ---------------------------------------------------------------------------------------------
// Loading.

namespace {

// Fills `bpe`, raises `max_id`, and appends each vocabulary id with the bytes it decodes to.
void parse_bpe(const json& model, const JsonFields& f, Bpe& bpe, int32_t& max_id,
               std::vector<std::pair<int32_t, std::string>>& decoded) {
  if (!model.contains("type") && !(model.contains("vocab") && model.contains("merges")))
    f.fail_at("model.type", "missing field");
  if (model.contains("type")) {
    const std::string& type = f.string(model, "model", "type");
    if (type != "BPE")
      f.fail_at("model.type", "model '" + type + "' is not supported (only byte-level BPE)");
  }
  if (auto it = model.find("dropout"); it != model.end() && !it->is_null() &&
      !(it->is_number() && it->get<double>() == 0.0))
    f.fail_at("model.dropout", "BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = model.find(key);
    if (it != model.end() && !it->is_null() && !(it->is_string() && it->get_ref<const std::string&>().empty()))
      f.fail_at(std::string("model.") + key, "is not supported by byte-level BPE");
  }
  bpe.ignore_merges = f.boolean(model, "model", "ignore_merges", false);
  bpe.fuse_unk = f.boolean(model, "model", "fuse_unk", false);
  bpe.byte_fallback = f.boolean(model, "model", "byte_fallback", false);

  const json& vocab = f.object(f.get(model, "model", "vocab"), "model.vocab");
  StringIds by_spelling;  // views into the JSON tree, which outlives this function's use of them
  by_spelling.reserve(vocab.size());
  std::vector<std::pair<int32_t, std::string>> raw;  // id, raw bytes
  raw.reserve(vocab.size());
  size_t arena_size = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!JsonFields::is_id(it.value())) f.id(it.value(), "model.vocab[\"" + it.key() + "\"]");
    int32_t id = int32_t(it.value().get<int64_t>());
    max_id = std::max(max_id, id);
    by_spelling.put(it.key(), id);
    bool in_alphabet = false;
    std::string bytes = byte_level_decode(it.key(), &in_alphabet);
    if (in_alphabet) {
      arena_size += bytes.size();
      raw.emplace_back(id, bytes);
    } else {
      bpe.unreachable.emplace(it.key(), id);
    }
    decoded.emplace_back(id, std::move(bytes));
  }
  bpe.vocab_arena.reserve(arena_size);
  for (const auto& [id, bytes] : raw) bpe.vocab_arena += bytes;
  bpe.vocab.reserve(raw.size());
  size_t offset = 0;
  for (const auto& [id, bytes] : raw) {
    bpe.vocab.put(std::string_view(bpe.vocab_arena).substr(offset, bytes.size()), id);
    offset += bytes.size();
  }

  for (int b = 0; b < 256; ++b) {
    char byte = char(b);
    const int64_t* id = bpe.vocab.find(std::string_view(&byte, 1));
    bpe.byte_ids[b] = id ? int32_t(*id) : -1;
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    const int64_t* fallback = by_spelling.find(hex);
    bpe.fallback_ids[b] = fallback ? int32_t(*fallback) : -1;
  }
  if (model.contains("unk_token") && !model["unk_token"].is_null()) {
    const std::string& unk = f.string(model, "model", "unk_token");
    const int64_t* id = by_spelling.find(unk);
    if (!id) f.fail_at("model.unk_token", "'" + unk + "' is not in model.vocab");
    bpe.unk_id = int32_t(*id);
  }

  const json& merges = f.get(model, "model", "merges");
  if (!merges.is_array()) f.fail_at("model.merges", "expected an array");
  bpe.merges.reserve(merges.size());
  int32_t rank = 0;
  std::string joined;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    std::string field = "model.merges[" + std::to_string(i) + "]";
    std::string_view left, right;
    if (m.is_string()) {  // legacy "a b"
      std::string_view line = m.get_ref<const std::string&>();
      if (line.substr(0, 8) == "#version") continue;
      size_t space = line.find(' ');
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
        f.fail_at(field, "expected two tokens separated by one space");
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      f.fail_at(field, "expected \"a b\" or [\"a\", \"b\"]");
    }
    joined.assign(left);
    joined.append(right);
    auto id_of = [&](std::string_view token) {
      const int64_t* id = by_spelling.find(token);
      if (!id) f.fail_at(field, "token '" + std::string(token) + "' is not in model.vocab");
      return int32_t(*id);
    };
    int32_t a = id_of(left), b = id_of(right), ab = id_of(joined);
    bpe.merges.put(pair_key(a, b), pack_merge(rank++, ab));  // a later duplicate wins, as in HF
  }
}

void parse_post_processor(const json& j, const std::string& field, const JsonFields& f,
                          std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  if (j.is_null()) return;
  const std::string& type = f.string(j, field, "type");
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "Sequence") {
    const json& list = f.get(j, field, "processors");
    if (!list.is_array()) f.fail_at(field + ".processors", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      parse_post_processor(list[i], field + ".processors[" + std::to_string(i) + "]", f, prefix, suffix);
    return;
  }
  if (type != "TemplateProcessing")
    f.fail_at(field + ".type", "post-processor '" + type +
                                   "' is not supported (only TemplateProcessing, ByteLevel and Sequence)");
  const json& single = f.get(j, field, "single");
  const json& specials = f.object(f.get(j, field, "special_tokens"), field + ".special_tokens");
  if (!single.is_array()) f.fail_at(field + ".single", "expected an array");
  bool after_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    std::string item_field = field + ".single[" + std::to_string(i) + "]";
    const json& item = f.object(single[i], item_field);
    if (item.contains("Sequence")) {
      after_sequence = true;
    } else if (item.contains("SpecialToken")) {
      const std::string& name = f.string(item["SpecialToken"], item_field + ".SpecialToken", "id");
      if (!specials.contains(name)) f.fail_at(field + ".special_tokens", "missing '" + name + "'");
      const json& ids = f.get(specials[name], field + ".special_tokens." + name, "ids");
      if (!ids.is_array()) f.fail_at(field + ".special_tokens." + name + ".ids", "expected an array");
      for (const json& id : ids) (after_sequence ? suffix : prefix).push_back(f.id(id, item_field));
    } else {
      f.fail_at(item_field, "expected Sequence or SpecialToken");
    }
  }
}

// What tokenizer_config.json and generation_config.json beside tokenizer.json add.
struct ModelConfigs {
  std::string config_path;
  std::optional<std::string> eos_token;
  std::vector<int32_t> generation_eos_ids;
  std::string chat_template;
};

ModelConfigs read_model_configs(const fs::path& dir) {
  ModelConfigs c;
  std::error_code ec;
  c.config_path = (dir / "tokenizer_config.json").string();
  if (fs::exists(c.config_path, ec)) {
    json config = parse_json_file(c.config_path);
    if (config.contains("eos_token")) c.eos_token = token_content(config["eos_token"]);
    json tmpl = config.value("chat_template", json());
    if (tmpl.is_string()) {
      c.chat_template = tmpl.get<std::string>();
    } else if (tmpl.is_array()) {  // [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
      for (const json& entry : tmpl)
        if (entry.is_object() && entry.contains("name") && entry["name"] == "default" &&
            entry.contains("template") && entry["template"].is_string())
          c.chat_template = entry["template"].get<std::string>();
    }
  }
  std::string generation_path = (dir / "generation_config.json").string();
  if (fs::exists(generation_path, ec)) {
    json ids = parse_json_file(generation_path).value("eos_token_id", json());
    if (ids.is_number_integer()) ids = json::array({ids});
    if (ids.is_array())
      for (const json& id : ids) c.generation_eos_ids.push_back(JsonFields(generation_path).id(id, "eos_token_id"));
  }
  return c;
}

std::optional<int32_t> model_token_id(const Bpe& bpe, std::string_view spelling) {
  bool in_alphabet = false;
  std::string bytes = byte_level_decode(spelling, &in_alphabet);
  if (in_alphabet) {
    if (const int64_t* id = bpe.vocab.find(bytes)) return int32_t(*id);
  } else if (auto it = bpe.unreachable.find(std::string(spelling)); it != bpe.unreachable.end()) {
    return it->second;
  }
  return std::nullopt;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path) {
  auto t = std::make_shared<Impl>();
  t->path = find_tokenizer_json(path);
  t->serial = next_tokenizer_serial++;
  JsonFields f(t->path);
  json root = parse_json_file(t->path);
  f.object(root, "(top level)");

  int32_t max_id = -1;
  std::vector<std::pair<int32_t, std::string>> decoded;  // id, the bytes it decodes to
  parse_bpe(f.object(f.get(root, "(top level)", "model"), "model"), f, t->bpe, max_id, decoded);
  const int32_t model_vocab_entries = int32_t(decoded.size());

  parse_normalizer(root.value("normalizer", json()), "normalizer", f, t->normalizers);

  json pre = root.value("pre_tokenizer", json());
  bool byte_level = false;
  if (!pre.is_null()) parse_pre_tokenizer(pre, "pre_tokenizer", f, t->pre_tokenizer, byte_level);
  if (!byte_level)
    f.fail_at("pre_tokenizer", "has no ByteLevel step; only byte-level BPE tokenizers are supported");

  json decoder = root.value("decoder", json());
  if (decoder.is_null() || f.string(decoder, "decoder", "type") != "ByteLevel")
    f.fail_at("decoder", "only the ByteLevel decoder is supported");

  parse_post_processor(root.value("post_processor", json()), "post_processor", f, t->special_prefix,
                       t->special_suffix);

  // Ids are assigned as HF's AddedVocabulary does: an already known content keeps its id, a new
  // one takes the next id after the model vocabulary, in file order. For well-formed files
  // this is the id the file states.
  std::vector<AddedToken> raw_tokens, normalized_tokens;
  std::vector<std::string> raw_patterns, normalized_patterns;
  int32_t next_id = model_vocab_entries;
  json added = root.value("added_tokens", json::array());
  if (!added.is_array()) f.fail_at("added_tokens", "expected an array");
  for (size_t i = 0; i < added.size(); ++i) {
    std::string field = "added_tokens[" + std::to_string(i) + "]";
    const json& a = f.object(added[i], field);
    AddedToken token;
    token.content = f.string(a, field, "content");
    f.id(f.get(a, field, "id"), field + ".id");
    token.special = f.boolean(a, field, "special", false);
    token.single_word = f.boolean(a, field, "single_word", false);
    token.lstrip = f.boolean(a, field, "lstrip", false);
    token.rstrip = f.boolean(a, field, "rstrip", false);
    token.normalized = f.boolean(a, field, "normalized", !token.special);
    if (token.content.empty()) continue;  // HF ignores empty added tokens
    if (auto known = t->added_ids.find(token.content); known != t->added_ids.end())
      token.id = known->second;
    else if (std::optional<int32_t> id = model_token_id(t->bpe, token.content))
      token.id = *id;
    else
      token.id = next_id++;
    max_id = std::max(max_id, token.id);
    t->added_ids[token.content] = token.id;
    std::string pattern = token.content;
    if (token.normalized)
      for (NormalForm form : t->normalizers) pattern = normalize(pattern, form);
    // Decoding uses the normalized spelling, as HF's simple_id_to_token does.
    decoded.emplace_back(token.id, byte_level_decode(pattern));
    (token.normalized ? normalized_tokens : raw_tokens).push_back(token);
    (token.normalized ? normalized_patterns : raw_patterns).push_back(pattern);
  }
  t->raw_matcher = AddedTokenMatcher(std::move(raw_tokens), raw_patterns);
  t->normalized_matcher = AddedTokenMatcher(std::move(normalized_tokens), normalized_patterns);

  // Later entries (the added tokens) win for an id claimed twice, as in HF.
  t->bytes_of_id.resize(size_t(max_id + 1));
  t->known_id.assign(size_t(max_id + 1), false);
  for (auto& [id, bytes] : decoded) {
    t->bytes_of_id[id] = std::move(bytes);
    t->known_id[id] = true;
  }
  for (const std::vector<int32_t>* ids : {&t->special_prefix, &t->special_suffix})
    for (int32_t id : *ids)
      if (id < 0 || size_t(id) >= t->known_id.size() || !t->known_id[id])
        f.fail_at("post_processor", "special token id " + std::to_string(id) + " is not in the vocabulary");

  Tokenizer tokenizer;
  tokenizer.impl_ = t;
  ModelConfigs configs = read_model_configs(fs::path(t->path).parent_path());
  if (configs.eos_token) {
    std::optional<int32_t> id = tokenizer.token_id(*configs.eos_token);
    if (!id) fail(configs.config_path + ": eos_token '" + *configs.eos_token + "' is not a token of " + t->path);
    t->eos_ids.push_back(*id);
  }
  for (int32_t id : configs.generation_eos_ids)
    if (std::find(t->eos_ids.begin(), t->eos_ids.end(), id) == t->eos_ids.end()) t->eos_ids.push_back(id);
  t->chat_template = std::move(configs.chat_template);
  return tokenizer;
}

// ---------------------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  if (std::optional<size_t> bad = find_invalid_utf8(text))
    fail("input is not valid UTF-8 at byte " + std::to_string(*bad));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special) ids.insert(ids.end(), impl_->special_prefix.begin(), impl_->special_prefix.end());
  impl_->encode_text(text, ids);
  if (add_special) ids.insert(ids.end(), impl_->special_suffix.begin(), impl_->special_suffix.end());
  return ids;
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->known_id.size() || !impl_->known_id[id])
    fail("token id " + std::to_string(id) + " is not in the vocabulary of " + impl_->path);
  return impl_->bytes_of_id[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string bytes;
  for (int32_t id : ids) bytes += token_bytes(id);
  return utf8_lossy(bytes);
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->known_id.size()); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(std::string(token)); it != impl_->added_ids.end())
    return it->second;
  return model_token_id(impl_->bpe, token);
}

std::optional<int32_t> Tokenizer::bos_id() const {
  if (impl_->special_prefix.empty()) return std::nullopt;
  return impl_->special_prefix.front();
}

const std::vector<int32_t>& Tokenizer::eos_ids() const { return impl_->eos_ids; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const std::string& Tokenizer::path() const { return impl_->path; }

std::string TokenStreamDecoder::push(int32_t id) {
  pending_ += tokenizer_.token_bytes(id);
  size_t ready = utf8_complete_prefix(pending_);
  std::string text = utf8_lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return text;
}

std::string TokenStreamDecoder::finish() {
  std::string text = utf8_lossy(pending_);
  pending_.clear();
  return text;
}

}  // namespace kvlab
