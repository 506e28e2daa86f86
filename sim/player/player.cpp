// plait stream player: runs a stimulus *program* on a Verilated model, without cocotb.
//
// Written here for plait (see plait/sim/player.py, which generates plait_ports.h from the
// build's Vtop.h, compiles this file against the cocotb build's objects and writes the
// programs).  The program is the cocotb stream bench's schedule
// (plait/sim/tb/test_linear_stream.py interprets the same program), so both benches
// drive the same port values in the same cycles; tests/test_player.py checks that they
// produce the same output words in the same cycles.
//
// Cycle discipline (the cocotb bench's, plait/sim/drivers.py): inputs change right after
// a rising edge; outputs are sampled once the model has settled (cocotb's ReadOnly);
// cycle 0 is the cycle right after reset's release.  One step of the clock:
//   settle (eval) -> sample the output monitor and every active stream's ready ->
//   rising edge (clk=1, eval) -> cycle++ -> streams that transferred present their next
//   beat (or drop valid) -> clk=0.
//
// Program file (little endian), written by plait.sim.player.Program:
//   "PLAITPRG" u32 version, u32 n_names, n_names x (u16 len, bytes): the port names
//   then ops, each a u8 opcode:
//     1 SET     u32 port, u32 nbytes, bytes           drive a port (held)
//     2 CHECK0  u32 port                               settle; the port must read 0
//     3 TICK    u32 n                                  n clock steps
//     4 MARK                                           record the current cycle
//     5 STREAM  u32 n_streams, per stream: u32 valid, u32 ready, u32 n_fields,
//               n_fields x u32 port, u64 beats, u32 beat_bytes, beats*beat_bytes bytes
//               (a beat: its fields' byte images one after the other); all streams
//               run at once, beats back to back; ends right after the edge that moved
//               the last beat
//     6 WAIT    u32 n, u32 timeout                     step until n outputs were seen
//     7 RESET   u32 port, u32 cycles                   port low for `cycles` edges, then
//                                                      high and one more edge; cycle := 0
//     8 MONITOR u32 valid, u32 ready, u32 data         the output stream to record
//     0 END
// Output file (argv[2]): "PLAITOUT" u32 word_bytes, u64 n_words, u64 n_marks,
//   u64 cycles, f64 seconds, words (n_words x word_bytes), i64 out_cycle[n_words],
//   i64 marks[n_marks].
// Exit status: 0 ok; 2 bad program or arguments; 3 a check failed or a stream stalled
// (the reason is printed on stderr as "plait-player: ...").
//
// Server mode (`plait_player --serve [plusargs]`, plait.sim.player.play keeps one per
// build): reads lines "PROGRAM<TAB>OUT" from stdin and runs each program exactly as a
// process of its own would -- a new VerilatedContext with the same plusargs (so the
// same seed for the uninitialised state) and a new model -- then prints the line
// "plait-player: done" on stdout.  A failure exits with the status above, as in the
// one-shot mode.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

enum PortKind { K8, K16, K32, K64, KW };

struct Port {
    const char* name;
    bool input;
    int width;
    PortKind kind;
    void* ptr;
};

}  // namespace

// generated: static void plait_bind_ports(Vtop* top, std::vector<Port>& ports)
#include "plait_ports.h"

namespace {

[[noreturn]] void fail(int code, const std::string& msg) {
    std::fprintf(stderr, "plait-player: %s\n", msg.c_str());
    std::exit(code);
}

int nbytes_of(const Port& p) { return (p.width + 7) / 8; }

void write_port(const Port& p, const uint8_t* src) {
    const int nb = nbytes_of(p);
    if (p.kind == KW) {
        const int words = (p.width + 31) / 32;
        uint32_t* w = static_cast<uint32_t*>(p.ptr);
        for (int i = 0; i < words; ++i) w[i] = 0;
        std::memcpy(w, src, nb);  // little endian: byte i of the bus is byte i of the words
        if (p.width % 32) w[words - 1] &= (1u << (p.width % 32)) - 1;
        return;
    }
    uint64_t v = 0;
    for (int i = nb - 1; i >= 0; --i) v = (v << 8) | src[i];
    if (p.width < 64) v &= (uint64_t(1) << p.width) - 1;
    switch (p.kind) {
        case K8: *static_cast<uint8_t*>(p.ptr) = uint8_t(v); break;
        case K16: *static_cast<uint16_t*>(p.ptr) = uint16_t(v); break;
        case K32: *static_cast<uint32_t*>(p.ptr) = uint32_t(v); break;
        default: *static_cast<uint64_t*>(p.ptr) = v; break;
    }
}

void read_port(const Port& p, uint8_t* dst) {
    const int nb = nbytes_of(p);
    if (p.kind == KW) {
        std::memcpy(dst, p.ptr, nb);
        return;
    }
    uint64_t v = 0;
    switch (p.kind) {
        case K8: v = *static_cast<uint8_t*>(p.ptr); break;
        case K16: v = *static_cast<uint16_t*>(p.ptr); break;
        case K32: v = *static_cast<uint32_t*>(p.ptr); break;
        default: v = *static_cast<uint64_t*>(p.ptr); break;
    }
    for (int i = 0; i < nb; ++i) dst[i] = uint8_t(v >> (8 * i));
}

bool read_bit(const Port& p) {
    uint8_t b[8] = {0};
    read_port(p, b);
    return b[0] & 1;
}

void write_bit(const Port& p, bool v) {
    uint8_t b[8] = {0};
    b[0] = v ? 1 : 0;
    write_port(p, b);
}

bool is_zero(const Port& p) {
    std::vector<uint8_t> b(nbytes_of(p));
    read_port(p, b.data());
    for (uint8_t x : b)
        if (x) return false;
    return true;
}

class Reader {
  public:
    explicit Reader(const char* path) {
        FILE* f = std::fopen(path, "rb");
        if (!f) fail(2, std::string("cannot open program ") + path);
        uint8_t buf[1 << 16];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data_.insert(data_.end(), buf, buf + n);
        std::fclose(f);
    }
    const uint8_t* take(size_t n) {
        if (pos_ + n > data_.size()) fail(2, "program ends in the middle of an op");
        const uint8_t* p = data_.data() + pos_;
        pos_ += n;
        return p;
    }
    template <typename T>
    T get() {
        T v;
        std::memcpy(&v, take(sizeof(T)), sizeof(T));
        return v;
    }

  private:
    std::vector<uint8_t> data_;
    size_t pos_ = 0;
};

struct Stream {
    const Port* valid;
    const Port* ready;
    std::vector<const Port*> fields;
    uint64_t beats;
    uint32_t beat_bytes;
    const uint8_t* data;
    uint64_t next = 0;  // the beat presented now
};

class Player {
  public:
    Player(Vtop* top, std::vector<Port> ports) : top_(top), ports_(std::move(ports)) {}

    void run(Reader& rd) {
        char magic[8];
        std::memcpy(magic, rd.take(8), 8);
        if (std::memcmp(magic, "PLAITPRG", 8) != 0) fail(2, "not a plait stream program");
        const uint32_t version = rd.get<uint32_t>();
        if (version != 1) fail(2, "program version " + std::to_string(version) + ", player reads 1");
        const uint32_t n_names = rd.get<uint32_t>();
        for (uint32_t i = 0; i < n_names; ++i) {
            const uint16_t len = rd.get<uint16_t>();
            std::string name(reinterpret_cast<const char*>(rd.take(len)), len);
            const Port* found = nullptr;
            for (const Port& p : ports_)
                if (name == p.name) found = &p;
            if (!found) fail(2, "the program names port '" + name + "', the model has none");
            names_.push_back(found);
        }
        top_->clk = 0;
        top_->eval();
        const auto t0 = std::chrono::steady_clock::now();
        for (;;) {
            const uint8_t op = rd.get<uint8_t>();
            ++op_index_;
            if (op == 0) break;
            switch (op) {
                case 1: op_set(rd); break;
                case 2: op_check0(rd); break;
                case 3: { const uint32_t n = rd.get<uint32_t>(); for (uint32_t i = 0; i < n; ++i) step(); } break;
                case 4: marks_.push_back(cycle_); break;
                case 5: op_stream(rd); break;
                case 6: op_wait(rd); break;
                case 7: op_reset(rd); break;
                case 8: op_monitor(rd); break;
                default: fail(2, "unknown opcode " + std::to_string(op));
            }
        }
        seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }

    void write(const char* path) const {
        FILE* f = std::fopen(path, "wb");
        if (!f) fail(2, std::string("cannot write ") + path);
        const uint32_t wb = mon_data_ ? uint32_t(nbytes_of(*mon_data_)) : 0;
        const uint64_t nw = out_cycle_.size(), nm = marks_.size(), cyc = uint64_t(cycle_);
        std::fwrite("PLAITOUT", 1, 8, f);
        std::fwrite(&wb, 4, 1, f);
        std::fwrite(&nw, 8, 1, f);
        std::fwrite(&nm, 8, 1, f);
        std::fwrite(&cyc, 8, 1, f);
        std::fwrite(&seconds_, 8, 1, f);
        if (!words_.empty()) std::fwrite(words_.data(), 1, words_.size(), f);
        if (nw) std::fwrite(out_cycle_.data(), 8, nw, f);
        if (nm) std::fwrite(marks_.data(), 8, nm, f);
        if (std::fclose(f) != 0) fail(2, std::string("cannot write ") + path);
    }

  private:
    const Port* ref(Reader& rd) {
        const uint32_t i = rd.get<uint32_t>();
        if (i >= names_.size()) fail(2, "port reference out of range");
        return names_[i];
    }

    const Port* input(Reader& rd) {
        const Port* p = ref(rd);
        if (!p->input) fail(2, std::string("the program drives output port ") + p->name);
        return p;
    }

    std::string where() const {
        return " (op " + std::to_string(op_index_) + ", cycle " + std::to_string(cycle_) + ")";
    }

    // one clock step: settle, sample, rising edge, advance the streams
    void step() {
        top_->eval();
        if (mon_valid_ && read_bit(*mon_valid_) && (!mon_ready_ || read_bit(*mon_ready_))) {
            const size_t nb = nbytes_of(*mon_data_);
            words_.resize(words_.size() + nb);
            read_port(*mon_data_, words_.data() + words_.size() - nb);
            out_cycle_.push_back(cycle_);
        }
        moved_.assign(active_.size(), false);
        for (size_t i = 0; i < active_.size(); ++i)
            moved_[i] = active_[i]->next < active_[i]->beats && read_bit(*active_[i]->ready);
        top_->clk = 1;
        top_->eval();
        ++cycle_;
        for (size_t i = 0; i < active_.size(); ++i)
            if (moved_[i]) present(*active_[i], active_[i]->next + 1);
        top_->clk = 0;
    }

    void present(Stream& s, uint64_t beat) {
        s.next = beat;
        if (beat >= s.beats) {
            write_bit(*s.valid, false);
            return;
        }
        const uint8_t* src = s.data + beat * s.beat_bytes;
        for (const Port* f : s.fields) {
            write_port(*f, src);
            src += nbytes_of(*f);
        }
        write_bit(*s.valid, true);
    }

    void op_set(Reader& rd) {
        const Port* p = input(rd);
        const uint32_t nb = rd.get<uint32_t>();
        if (int(nb) != nbytes_of(*p))
            fail(2, std::string("SET ") + p->name + ": " + std::to_string(nb) + " bytes for a " +
                        std::to_string(p->width) + "-bit port");
        write_port(*p, rd.take(nb));
    }

    void op_check0(Reader& rd) {
        const Port* p = ref(rd);
        top_->eval();
        if (!is_zero(*p)) fail(3, std::string("check failed: ") + p->name + " is not 0" + where());
    }

    void op_monitor(Reader& rd) {
        mon_valid_ = ref(rd);
        mon_ready_ = ref(rd);
        mon_data_ = ref(rd);
    }

    void op_reset(Reader& rd) {
        const Port* rst = input(rd);
        const uint32_t cycles = rd.get<uint32_t>();
        write_bit(*rst, false);
        for (uint32_t i = 0; i < cycles + 1; ++i) {
            if (i == cycles) write_bit(*rst, true);
            top_->eval();
            top_->clk = 1;
            top_->eval();
            top_->clk = 0;
        }
        cycle_ = 0;
    }

    void op_wait(Reader& rd) {
        const uint32_t n = rd.get<uint32_t>(), timeout = rd.get<uint32_t>();
        for (uint32_t k = 0; out_cycle_.size() < n; ++k) {
            if (k == timeout)
                fail(3, "saw " + std::to_string(out_cycle_.size()) + " of " + std::to_string(n) +
                            " output words after " + std::to_string(timeout) + " cycles" + where());
            step();
        }
    }

    void op_stream(Reader& rd) {
        const uint32_t n = rd.get<uint32_t>();
        std::vector<Stream> streams(n);
        for (Stream& s : streams) {
            s.valid = input(rd);
            s.ready = ref(rd);
            const uint32_t nf = rd.get<uint32_t>();
            uint32_t bytes = 0;
            for (uint32_t i = 0; i < nf; ++i) {
                s.fields.push_back(input(rd));
                bytes += nbytes_of(*s.fields.back());
            }
            s.beats = rd.get<uint64_t>();
            s.beat_bytes = rd.get<uint32_t>();
            if (s.beat_bytes != bytes)
                fail(2, std::string("STREAM on ") + s.valid->name + ": beats of " +
                            std::to_string(s.beat_bytes) + " bytes for fields of " + std::to_string(bytes));
            s.data = rd.take(size_t(s.beats) * s.beat_bytes);
        }
        active_.clear();
        for (Stream& s : streams) {
            active_.push_back(&s);
            present(s, 0);
        }
        uint64_t idle = 0;
        for (;;) {
            bool left = false;
            for (Stream* s : active_) left = left || s->next < s->beats;
            if (!left) break;
            std::vector<uint64_t> before;
            for (Stream* s : active_) before.push_back(s->next);
            step();
            bool moved = false;
            for (size_t i = 0; i < active_.size(); ++i) moved = moved || active_[i]->next != before[i];
            idle = moved ? 0 : idle + 1;
            if (idle > kStallCycles) {
                std::string which;
                for (Stream* s : active_)
                    if (s->next < s->beats)
                        which += std::string(which.empty() ? "" : ", ") + s->valid->name + " beat " +
                                 std::to_string(s->next) + "/" + std::to_string(s->beats);
                fail(3, "streams stalled for " + std::to_string(kStallCycles) + " cycles: " + which + where());
            }
        }
        active_.clear();
    }

    static constexpr uint64_t kStallCycles = 100000;
    Vtop* top_;
    std::vector<Port> ports_;
    std::vector<const Port*> names_;
    std::vector<Stream*> active_;
    std::vector<bool> moved_;
    const Port* mon_valid_ = nullptr;
    const Port* mon_ready_ = nullptr;
    const Port* mon_data_ = nullptr;
    std::vector<uint8_t> words_;
    std::vector<int64_t> out_cycle_, marks_;
    int64_t cycle_ = 0;
    uint64_t op_index_ = 0;
    double seconds_ = 0.0;
};

// one program on a fresh context and model (argv: the plusargs for the context)
void play_one(int argc, char** argv, const char* program, const char* out) {
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(ctx.get(), "TOP");
    std::vector<Port> ports;
    plait_bind_ports(top.get(), ports);
    Reader rd(program);
    Player player(top.get(), std::move(ports));
    player.run(rd);
    top->final();
    player.write(out);
}

int serve(int argc, char** argv) {
    std::string line;
    int c;
    for (;;) {
        line.clear();
        while ((c = std::fgetc(stdin)) != EOF && c != '\n') line.push_back(char(c));
        if (c == EOF && line.empty()) return 0;           // the client closed the pipe
        const size_t tab = line.find('\t');
        if (tab == std::string::npos) fail(2, "serve: expected PROGRAM<TAB>OUT, got " + line);
        const std::string program = line.substr(0, tab), out = line.substr(tab + 1);
        play_one(argc, argv, program.c_str(), out.c_str());
        std::fputs("plait-player: done\n", stdout);
        std::fflush(stdout);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::strcmp(argv[1], "--serve") == 0) return serve(argc, argv);
    if (argc < 3) fail(2, "usage: plait_player PROGRAM OUT [+verilator+... plusargs] | "
                          "plait_player --serve [plusargs]");
    play_one(argc, argv, argv[1], argv[2]);
    return 0;
}
