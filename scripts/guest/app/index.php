<?php
// colo app guest: the "students" application (front controller; nginx sends every request here).
// Installed as /srv/colo-app/index.php by scripts/build-app-guest-image.
//
//   GET  /              HTML list of all students + a form to add one (starts a PHP session)
//   POST /students      name, age, email (x-www-form-urlencoded) -> 201, X-Student-Id, "id=N\n"
//                       (answers only after COMMIT returned; "Accept: text/html" gets an HTML page)
//   GET  /students.txt  id<TAB>name<TAB>age<TAB>email<TAB>registered_at per line, ordered by id
//   GET  /health        "ok\n" when the database answers SELECT 1
//   GET  /check         "ok rows=N ..." when amcheck finds the students heap and index sound (500 otherwise)
//   GET  /bench/disk    mode=sync4k&n=N (4 KiB writes, each fdatasync'd) or mode=seq&mib=M: "ops= bytes= seconds="
declare(strict_types=1);

const DSN = 'pgsql:host=/run/postgresql;dbname=students';
const DB_USER = 'www-data'; // peer authentication over the Unix socket, no password

function db(): PDO
{
    return new PDO(DSN, DB_USER, null, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
        PDO::ATTR_EMULATE_PREPARES => false,
        PDO::ATTR_PERSISTENT => true,
    ]);
}

function send(int $status, string $body, string $type = 'text/plain; charset=utf-8', array $headers = []): void
{
    http_response_code($status);
    header('Content-Type: ' . $type);
    header('Cache-Control: no-store');
    foreach ($headers as $name => $value) {
        header($name . ': ' . $value);
    }
    echo $body;
}

function h(string $s): string
{
    return htmlspecialchars($s, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

function wants_html(): bool
{
    return stripos($_SERVER['HTTP_ACCEPT'] ?? '', 'text/html') !== false;
}

/** Returns [name, age, email] or throws InvalidArgumentException with a message for the client. */
function validate(array $in): array
{
    $name = $in['name'] ?? null;
    $age = $in['age'] ?? null;
    $email = $in['email'] ?? null;
    if (!is_string($name) || !preg_match('/^.{1,100}$/su', $name)) {
        throw new InvalidArgumentException('name must be 1 to 100 characters (UTF-8)');
    }
    if (!is_string($age) || !preg_match('/^[0-9]{1,3}$/', $age) || (int) $age < 1 || (int) $age > 150) {
        throw new InvalidArgumentException('age must be an integer from 1 to 150');
    }
    if (!is_string($email) || !preg_match('//u', $email) || strpos($email, '@') === false || strlen($email) > 320) {
        throw new InvalidArgumentException('email must contain @ (at most 320 bytes, UTF-8)');
    }
    // Tabs and newlines would break the one-line-per-student format of /students.txt.
    if (preg_match('/[\x00-\x1f\x7f]/', $name . $email)) {
        throw new InvalidArgumentException('name and email must not contain control characters');
    }
    return [$name, (int) $age, $email];
}

function page_index(): void
{
    session_start(); // sets PHPSESSID (random per server: wanted nondeterminism)
    $_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
    $rows = db()->query('SELECT id, name, age, email, registered_at FROM students ORDER BY id')->fetchAll();
    $out = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Students</title></head><body>\n"
        . "<h1>Students</h1>\n<table border=\"1\">\n"
        . "<tr><th>id</th><th>name</th><th>age</th><th>email</th><th>registered_at</th></tr>\n";
    foreach ($rows as $r) {
        $out .= '<tr><td>' . h((string) $r['id']) . '</td><td>' . h($r['name']) . '</td><td>' . h((string) $r['age'])
            . '</td><td>' . h($r['email']) . '</td><td>' . h($r['registered_at']) . "</td></tr>\n";
    }
    $out .= "</table>\n<p>" . count($rows) . " student(s). Visits in this session: " . (int) $_SESSION['visits'] . "</p>\n"
        . "<h2>Add a student</h2>\n<form method=\"post\" action=\"/students\">\n"
        . "<label>Name <input name=\"name\" required maxlength=\"100\"></label>\n"
        . "<label>Age <input name=\"age\" type=\"number\" min=\"1\" max=\"150\" required></label>\n"
        . "<label>Email <input name=\"email\" type=\"email\" required></label>\n"
        . "<button type=\"submit\">Add</button>\n</form>\n</body></html>\n";
    send(200, $out, 'text/html; charset=utf-8');
}

function add_student(): void
{
    try {
        [$name, $age, $email] = validate($_POST);
    } catch (InvalidArgumentException $e) {
        send(400, 'error: ' . $e->getMessage() . "\n");
        return;
    }
    $db = db();
    $db->beginTransaction();
    try {
        $st = $db->prepare('INSERT INTO students (name, age, email, registered_at) VALUES (?, ?, ?, now()) RETURNING id');
        $st->execute([$name, $age, $email]);
        $id = (string) $st->fetchColumn();
        $db->commit(); // synchronous_commit=on: returns once the WAL is flushed to the data disk
    } catch (Throwable $e) {
        if ($db->inTransaction()) {
            $db->rollBack();
        }
        throw $e;
    }
    if (wants_html()) {
        send(201, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Student added</title></head><body>\n"
            . '<p>Student ' . h($id) . " added.</p>\n<p><a href=\"/\">Back to the list</a></p>\n</body></html>\n",
            'text/html; charset=utf-8', ['X-Student-Id' => $id]);
    } else {
        send(201, "id=$id\n", 'text/plain; charset=utf-8', ['X-Student-Id' => $id]);
    }
}

function students_txt(): void
{
    $st = db()->query('SELECT id, name, age, email, registered_at FROM students ORDER BY id');
    $out = '';
    while (($r = $st->fetch(PDO::FETCH_NUM)) !== false) {
        $out .= implode("\t", $r) . "\n";
    }
    send(200, $out);
}

/**
 * The data disk's speed as the guest sees it: mode=sync4k writes n 4 KiB blocks, each followed by
 * fdatasync (a database's commit); mode=seq writes mib MiB in 1 MiB blocks, then one fdatasync.
 * Answers "ops=N bytes=B seconds=S". The file lives on the data disk, beside the cluster.
 */
function bench_disk(): void
{
    $mode = $_GET['mode'] ?? '';
    $file = '/var/lib/postgresql/colo-bench/scratch';
    $block = $mode === 'seq' ? 1 << 20 : 4096;
    $n = $mode === 'seq' ? max(1, min(256, (int) ($_GET['mib'] ?? 32))) : max(1, min(5000, (int) ($_GET['n'] ?? 200)));
    if ($mode !== 'seq' && $mode !== 'sync4k') {
        send(400, "error: mode must be sync4k or seq\n");
        return;
    }
    $data = random_bytes($block);
    $f = fopen($file, 'c');
    $t0 = hrtime(true);
    for ($i = 0; $i < $n; $i++) {
        fseek($f, $mode === 'seq' ? $i * $block : ($i % 256) * $block);
        fwrite($f, $data);
        if ($mode === 'sync4k') {
            fflush($f);
            fdatasync($f);
        }
    }
    fflush($f);
    fdatasync($f);
    $seconds = (hrtime(true) - $t0) / 1e9;
    fclose($f);
    send(200, sprintf("ops=%d bytes=%d seconds=%.6f\n", $n, $n * $block, $seconds));
}

/** PostgreSQL's own consistency check (amcheck) of the students table: heap and primary key index. */
function check(): void
{
    $db = db();
    $heap = $db->query("SELECT count(*) FROM verify_heapam('students', false, true)")->fetchColumn();
    $db->query("SELECT bt_index_check('students_pkey', true)")->fetchColumn(); // throws on corruption
    $rows = $db->query('SELECT count(*), count(DISTINCT id), coalesce(max(id), 0) FROM students')->fetch(PDO::FETCH_NUM);
    $ok = (string) $heap === '0' && $rows[0] === $rows[1];
    send($ok ? 200 : 500, ($ok ? 'ok' : 'corrupt') . " rows=$rows[0] distinct_ids=$rows[1] max_id=$rows[2] heap_errors=$heap index=ok\n");
}

function health(): void
{
    $v = db()->query('SELECT 1')->fetchColumn();
    if ((string) $v === '1') {
        send(200, "ok\n");
    } else {
        send(503, "error: unexpected SELECT 1 result\n");
    }
}

$method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
$routes = [
    '/' => ['GET' => 'page_index', 'HEAD' => 'page_index'],
    '/index.php' => ['GET' => 'page_index', 'HEAD' => 'page_index'],
    '/students' => ['POST' => 'add_student'],
    '/students.txt' => ['GET' => 'students_txt', 'HEAD' => 'students_txt'],
    '/health' => ['GET' => 'health', 'HEAD' => 'health'],
    '/check' => ['GET' => 'check'],
    '/bench/disk' => ['GET' => 'bench_disk'],
];
try {
    if (!isset($routes[$path])) {
        send(404, "error: not found\n");
    } elseif (!isset($routes[$path][$method])) {
        send(405, "error: method not allowed\n", 'text/plain; charset=utf-8',
            ['Allow' => implode(', ', array_keys($routes[$path]))]);
    } else {
        $routes[$path][$method]();
    }
} catch (PDOException $e) {
    error_log('colo-app: database error: ' . $e->getMessage());
    if (!headers_sent()) {
        send(503, "error: database unavailable\n");
    }
}
