package imaptest

// Vocabulary of the generated messages: English, French, German, Polish and Russian
// words, so that bodies and subjects carry non-ASCII UTF-8.
var wordList = []string{
	"the", "meeting", "project", "report", "budget", "schedule", "review", "update", "please",
	"attached", "find", "thanks", "regards", "deadline", "invoice", "contract", "draft", "final",
	"version", "quarter", "results", "team", "customer", "server", "migration", "mailbox",
	"folder", "message", "tomorrow", "yesterday", "next", "week", "monday", "friday", "call",
	"agenda", "minutes", "decision", "proposal", "question", "answer", "issue", "release",
	"feature", "test", "deploy", "production", "staging", "backup", "restore", "account",
	"password", "login", "holiday", "travel", "flight", "hotel", "booking", "confirmation",
	"and", "of", "to", "in", "for", "with", "on", "at", "from", "by", "about", "as", "into",
	"we", "you", "they", "it", "is", "are", "was", "will", "can", "should", "would", "could",
	"réunion", "été", "déjà", "reçu", "à", "très", "prévu", "équipe", "données", "fenêtre",
	"après", "demain", "merci", "bonjour", "cordialement", "facture", "pièce", "jointe",
	"Grüße", "Besprechung", "morgen", "über", "Bestätigung", "Rechnung", "Urlaub", "schön",
	"zusammen", "Übersicht", "Anhang", "dziękuję", "spotkanie", "jutro", "wiadomość",
	"встреча", "завтра", "отчёт", "спасибо", "письмо", "документы", "проект",
	"golang", "goroutine", "channel", "interface", "context", "error", "benchmark", "allocation",
}

var firstNames = []string{
	"Alice", "Bob", "Chloé", "David", "Émilie", "François", "Gabriel", "Hélène", "Ines",
	"Jürgen", "Katarzyna", "Léa", "Marek", "Noémie", "Oskar", "Paweł", "Quentin", "Renée",
	"Sören", "Tomasz", "Ursula", "Victor", "Wiktoria", "Xavier", "Yannick", "Zoé", "Anna",
	"Ivan", "Olga", "Sergei",
}

var lastNames = []string{
	"Martin", "Bernard", "Dubois", "Müller", "Schmidt", "Schneider", "Kowalski", "Nowak",
	"Wiśniewski", "Petit", "Lefèvre", "Fischer", "Weber", "Lewandowski", "Moreau", "Garcia",
	"Smith", "Jones", "Taylor", "Brown", "Ivanov", "Kuznetsov", "Popescu", "Rossi", "Bianchi",
}

var domains = []string{
	"example.com", "example.net", "example.org", "mail.example.de", "example.fr",
	"corp.example.com", "lists.example.org", "example.pl",
}

var greetings = []string{
	"Hello,", "Hi all,", "Bonjour,", "Hallo zusammen,", "Dzień dobry,", "Здравствуйте,",
	"Dear team,", "Hi,",
}

var attachmentNames = []string{
	"report.pdf", "invoice-2024.pdf", "photo.jpg", "IMG_2041.jpg", "slides.pdf",
	"archive.zip", "contrat signé.pdf", "Übersicht.pdf", "backup.zip", "scan0001.jpg",
}
