// The protocol document's own example client, copied verbatim from its "Example Client
// Implementation" section (../shared/seed/websocket-protocol.md); test_browser_origin.py checks it still matches.

class WorkspaceWebSocket {
  constructor(url, username) {
    this.url = url;
    this.username = username;
    this.ws = null;
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = 5;
    this.reconnectDelay = 3000;
  }

  connect() {
    this.ws = new WebSocket(`${this.url}?username=${this.username}`);

    this.ws.onopen = () => {
      console.log('✅ Connected to Workspace');
      this.reconnectAttempts = 0;
    };

    this.ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      this.handleMessage(message);
    };

    this.ws.onerror = (error) => {
      console.error('❌ WebSocket error:', error);
    };

    this.ws.onclose = () => {
      console.log('❌ Disconnected from Workspace');
      this.attemptReconnect();
    };
  }

  handleMessage(message) {
    switch (message.type) {
      case 'connected':
        console.log(`Connected as ${message.username} (${message.connectedUsers} users online)`);
        break;

      case 'message:new':
        console.log(`📨 ${message.data.username}: ${message.data.text}`);
        this.onMessageReceived?.(message.data);
        break;

      case 'presence:update':
        console.log(`👤 ${message.data.username} is ${message.data.status}`);
        this.onPresenceUpdate?.(message.data);
        break;

      case 'typing:indicator':
        if (message.data.isTyping) {
          console.log(`⌨️  ${message.data.username} is typing...`);
        }
        this.onTypingUpdate?.(message.data);
        break;

      default:
        console.warn(`Unknown message type: ${message.type}`);
    }
  }

  sendMessage(text) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      console.error('WebSocket not connected');
      return;
    }

    this.ws.send(JSON.stringify({
      type: 'message:send',
      text
    }));
  }

  setPresence(status) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      console.error('WebSocket not connected');
      return;
    }

    this.ws.send(JSON.stringify({
      type: 'presence:update',
      status
    }));
  }

  setTyping(isTyping) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return;
    }

    this.ws.send(JSON.stringify({
      type: 'typing:indicator',
      isTyping
    }));
  }

  attemptReconnect() {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      console.error('Max reconnection attempts reached');
      return;
    }

    this.reconnectAttempts++;
    console.log(`Reconnecting in ${this.reconnectDelay}ms (attempt ${this.reconnectAttempts})`);

    setTimeout(() => {
      this.connect();
    }, this.reconnectDelay);
  }

  disconnect() {
    if (this.ws) {
      this.ws.close();
    }
  }
}

